"""The aiohttp side of the upstream seam, for what the lean client does not do.

Since the httptools client (:mod:`llmrelay.upstream_h1`) serves ``http://`` and
``https://``, this is used only for a base URL with credentials in it (``user:pass@``,
which aiohttp sends as basic auth) and by the bench's ``--client aiohttp`` comparison.
It is imported on first use: aiohttp's client is ~0.3 s of a cold ``import llmrelay.app``
(``python -X importtime``), paid now only by the gateways that need it.

One session per event loop (a keep-alive pool per host, no redirects, no
decompression); failures become :class:`UpstreamUnreachable` / :class:`UpstreamTimeout`
in the words of :func:`describe`, with aiohttp's own text kept in ``detail``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import yarl
from aiohttp.http_exceptions import HttpProcessingError

from llmrelay.errors import UpstreamResponseTooLarge, UpstreamTimeout, UpstreamUnreachable
from llmrelay.providers.base import UpstreamCall


class _HttpResponse:
    __slots__ = ("_max_body", "_provider", "_resp", "_timeout", "headers", "status")

    def __init__(
        self, resp: aiohttp.ClientResponse, provider: str, timeout: float, max_body: int
    ) -> None:
        self._resp = resp
        self._provider = provider
        self._timeout = timeout
        self._max_body = max_body
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    async def read(self) -> bytes:
        try:
            return await self._read_capped()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"upstream {self._provider} timed out after {self._timeout:g}s",
                provider=self._provider,
            ) from exc
        except (aiohttp.ClientError, HttpProcessingError) as exc:
            raise UpstreamUnreachable(
                f"upstream {self._provider} failed while sending its answer: {describe(exc)}",
                provider=self._provider,
                detail=_detail(exc),
            ) from exc
        finally:
            self._resp.release()

    async def _read_capped(self) -> bytes:
        limit = self._max_body
        declared = self._resp.content_length
        if declared is not None and declared > limit:
            self._resp.close()  # do not drain what will not be used
            raise self._too_large(limit)
        parts: list[bytes] = []
        size = 0
        content = self._resp.content
        unwatch = _end_body_on_close(self._resp)
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return parts[0] if len(parts) == 1 else b"".join(parts)
                size += len(chunk)
                if size > limit:
                    self._resp.close()
                    raise self._too_large(limit)
                parts.append(chunk)
        finally:
            unwatch()

    def _too_large(self, limit: int) -> UpstreamResponseTooLarge:
        return UpstreamResponseTooLarge(
            self._provider, "an answer", limit, "max_upstream_body_bytes"
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        unwatch = _end_body_on_close(self._resp)
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"upstream {self._provider} stalled for more than {self._timeout:g}s mid-stream",
                provider=self._provider,
            ) from exc
        except (aiohttp.ClientError, HttpProcessingError) as exc:
            raise UpstreamUnreachable(
                f"upstream {self._provider} broke off the stream: {describe(exc)}",
                provider=self._provider,
                detail=_detail(exc),
            ) from exc
        finally:
            unwatch()

    def close(self) -> None:
        self._resp.close() if not self._resp.closed else None


def _end_body_on_close(resp: aiohttp.ClientResponse) -> Callable[[], None]:
    """Fail the body's reader if the connection is lost before the body ended.

    aiohttp's C parser, on a malformed chunk header, closes the connection and drops
    the read timeout but never ends the body, so a reader would wait forever (measured
    with aiohttp 3.14 and ``sock_read`` set). Returns the function that unhooks this
    once reading is done (the connection may go back to the pool and live on).
    """
    connection = resp.connection
    protocol = connection.protocol if connection is not None else None
    closed: asyncio.Future[None] | None = protocol.closed if protocol is not None else None
    if closed is None:
        return _nothing
    content = resp.content

    def lost(_: object) -> None:
        if not content.is_eof() and content.exception() is None:
            content.set_exception(
                aiohttp.ClientPayloadError(
                    "connection closed before the body was complete (malformed chunk?)"
                )
            )

    def unhook() -> None:
        closed.remove_done_callback(lost)
        # The future exists now; if the pooled connection later dies with an error,
        # someone must retrieve it or asyncio logs "exception was never retrieved".
        # Exactly one retriever per connection, however many responses it carries.
        closed.remove_done_callback(_retrieve)
        closed.add_done_callback(_retrieve)

    closed.add_done_callback(lost)
    return unhook


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _nothing() -> None:
    return None


def describe(exc: aiohttp.ClientError | HttpProcessingError) -> str:
    """What a transport failure means, in words a client understands.

    Checked most specific first: the DNS, TLS and certificate errors are kinds of
    connector errors, and a connection reset is a kind of ``ClientOSError``. Host names
    and addresses stay out (they are the operator's network, not the client's).
    """
    if isinstance(exc, aiohttp.ClientPayloadError | HttpProcessingError):
        return (
            "the connection broke off in the middle of the answer (the upstream sent "
            "a truncated or malformed body)"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the upstream closed the connection without finishing its answer"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return "the TLS handshake with it failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "no connection could be made to it (refused or unreachable)"
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the provider's base_url is not a valid URL"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the upstream sent a malformed HTTP response"
    return "the connection failed"


def _detail(exc: BaseException) -> str:
    """The library's own description, for operators (attempt records, logs)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AiohttpClient:
    """Pooled aiohttp client; create it inside the serving event loop."""

    def __init__(self, max_body_bytes: int) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.max_body_bytes = max_body_bytes
        # Parsed URLs and timeout objects are reused: building them per request was a
        # measurable share of the relay's CPU (yarl parsing, ClientTimeout validation).
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[tuple[bool, float, float], aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                headers={"accept-encoding": "identity", "user-agent": "llmrelay"},
                timeout=aiohttp.ClientTimeout(total=None),
                # No jar: cookies one caller's call got must not ride on another's.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> _HttpResponse:
        session = self._get_session()
        t = self._timeouts.get((stream, timeout, connect_timeout))
        if t is None:
            if stream:
                t = aiohttp.ClientTimeout(
                    total=None, sock_connect=connect_timeout, sock_read=timeout
                )
            else:
                t = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
            if len(self._timeouts) < 1000:
                self._timeouts[(stream, timeout, connect_timeout)] = t
        url = self._urls.get(call.url)
        if url is None:
            url = yarl.URL(call.url)
            if len(self._urls) < 10_000:
                self._urls[call.url] = url
        try:
            resp = await session.request(
                call.method,
                url,
                data=call.body or None,
                headers=call.headers,
                timeout=t,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"upstream {provider} timed out after {timeout:g}s", provider=provider
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream {provider} is unreachable: {describe(exc)}",
                provider=provider,
                detail=_detail(exc),
            ) from exc
        return _HttpResponse(resp, provider, timeout, self.max_body_bytes)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
