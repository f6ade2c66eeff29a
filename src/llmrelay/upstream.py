"""The one I/O seam to providers: send an :class:`UpstreamCall`, get a response.

:class:`HttpTransport` wraps one aiohttp session per event loop (a keep-alive pool per
host, no redirects, no decompression: bytes are relayed as they come). Transport
failures become :class:`UpstreamUnreachable` (502) or :class:`UpstreamTimeout` (504),
so nothing above this module ever sees an aiohttp exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
import yarl

from llmrelay.errors import UpstreamTimeout, UpstreamUnreachable
from llmrelay.providers.base import UpstreamCall


class UpstreamResponse(Protocol):
    status: int
    headers: dict[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(
        self, call: UpstreamCall, *, provider: str, timeout: float, connect_timeout: float,
        stream: bool,
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class _HttpResponse:
    __slots__ = ("_provider", "_resp", "_timeout", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, provider: str, timeout: float) -> None:
        self._resp = resp
        self._provider = provider
        self._timeout = timeout
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"upstream {self._provider} timed out after {self._timeout:g}s",
                provider=self._provider,
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream {self._provider} failed while sending its answer: {_describe(exc)}",
                provider=self._provider,
            ) from exc
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
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
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream {self._provider} broke off the stream: {_describe(exc)}",
                provider=self._provider,
            ) from exc

    def close(self) -> None:
        self._resp.close() if not self._resp.closed else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpTransport:
    """Pooled aiohttp client; create it inside the serving event loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
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
            )
        return self._session

    async def send(
        self, call: UpstreamCall, *, provider: str, timeout: float, connect_timeout: float,
        stream: bool,
    ) -> UpstreamResponse:
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
                call.method, url, data=call.body or None, headers=call.headers,
                timeout=t, allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"upstream {provider} timed out after {timeout:g}s", provider=provider
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream {provider} is unreachable: {_describe(exc)}", provider=provider
            ) from exc
        return _HttpResponse(resp, provider, timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
