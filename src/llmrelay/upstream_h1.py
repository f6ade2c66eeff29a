"""A lean keep-alive HTTP/1.1 client on httptools, for ``http://`` and ``https://`` upstreams.

aiohttp's client costs ~130 Python calls per relayed request (request and payload
objects, header multidicts, timers, the stream reader); this one costs ~20: a pool of
idle connections per ``host:port``, the request written in one ``write``, the response
parsed by httptools (the C parser uvicorn uses) into a status, a lower-cased header dict
and body pieces.

What :class:`~llmrelay.upstream.HttpTransport` guarantees is kept: no redirects, no
decompression (``accept-encoding: identity`` is sent), the body cap, the connect timeout,
the idle gap between stream reads, failures as :class:`UpstreamUnreachable` /
:class:`UpstreamTimeout` in the same words (:func:`describe_os`), a
connection that broke or was left mid-body never reused. A pooled connection the upstream
closed while idle is noticed before it is written to (``connection_lost`` has run) and
dropped; one that dies after the request was written is not retried, since a POST the
upstream may have acted on must not be sent twice (aiohttp does the same for POST).

TLS (opened by :mod:`llmrelay.upstream_dial`): ``https://`` connections verify the
server's certificate chain and host name against the system store (as aiohttp's default
context did; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name an operator's own CA bundle), send
SNI, offer only ``http/1.1`` by ALPN, and do the handshake inside the connect timeout. A
certificate that is not accepted (unknown CA, expired, wrong host name) fails the call
as ``UpstreamUnreachable`` "its TLS certificate was not accepted", as it did on aiohttp.

The pool: idle connections of one ``scheme://host:port`` are reused newest first, at most
:data:`MAX_IDLE_PER_HOST` of them (the oldest goes when one more is put back), each closed
:data:`KEEPALIVE_SECONDS` after it went idle by one timer per pool (not left open until the
next reuse); one the server closed or wrote to while idle is dropped at once. In-flight
connections are not capped (aiohttp ran with ``limit=0`` too): the gateway's own
``max_connections`` bounds them.

New connections (DNS cache, TCP, TLS) are opened by :mod:`llmrelay.upstream_dial`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import httptools

from llmrelay.errors import UpstreamResponseTooLarge, UpstreamTimeout, UpstreamUnreachable
from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream_dial import DNS_TTL_SECONDS, Dialer, describe_os

#: Seconds an idle pooled connection is kept (aiohttp's ``keepalive_timeout`` before).
KEEPALIVE_SECONDS = 60.0
#: Idle connections kept per ``scheme://host:port``; one more put back closes the oldest.
MAX_IDLE_PER_HOST = 100

_BROKE = (
    "the connection broke off in the middle of the answer (the upstream sent "
    "a truncated or malformed body)"
)


class _Broken(Exception):
    """The connection ended or the parser refused the bytes: ``detail`` says which."""

    def __init__(self, detail: str, before_answer: bool) -> None:
        super().__init__(detail)
        self.before_answer = before_answer


#: Body bytes received but not yet taken by the reader above which the socket stops being
#: read (``pause_reading``), and below which it is read again: a client slower than its
#: upstream holds at most about this much per stream in the gateway, the rest waits in
#: the kernel's buffers and TCP's window, as it would with the client reading directly.
_PAUSE_ABOVE = 256 * 1024
_RESUME_BELOW = 64 * 1024


class _Connection(asyncio.Protocol):
    """One TCP connection and the response being read on it."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle = False
        self.idle_since = 0.0
        self.paused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.head: asyncio.Future[None] | None = None
        self.pieces: deque[bytes] = deque()
        self.size = 0
        self.buffered = 0  # bytes in ``pieces``
        if self.paused and self.transport is not None:
            self.transport.resume_reading()
        self.paused = False
        self.complete = False
        self.error: _Broken | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.idle:  # nothing was asked: a 408 or garbage; the connection is not reusable
            self.abort()
            self.pool.forget(self)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the upstream switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"HttpParserError: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            if self.status and not self.headers.get("content-length") and not self.chunked():
                self.on_message_complete()  # a body delimited by the connection's end
            else:
                self._fail(f"ServerDisconnectedError: {exc or 'the connection was closed'}")
        self.pool.forget(self)

    # -- httptools callbacks ----------------------------------------------------------
    def on_status(self, _: bytes) -> None:
        self.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self.status = 0
            self.headers = {}
            return
        self.keep_alive = self.parser.should_keep_alive()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.size += len(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_ABOVE and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def take(self) -> bytes:
        """The oldest body piece, reading the socket again once the reader caught up."""
        piece = self.pieces.popleft()
        self.buffered -= len(piece)
        if self.paused and self.buffered < _RESUME_BELOW and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def on_message_complete(self) -> None:
        if not self.status:
            return  # the end of an interim 1xx message
        self.complete = True
        self._wake()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    # -- helpers ----------------------------------------------------------------------
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, detail: str) -> None:
        if self.error is None:
            self.error = _Broken(detail, before_answer=not self.status)
        self.keep_alive = False
        if self.head is not None and not self.head.done():
            self.head.set_exception(self.error)
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle keep-alive connections of one ``scheme://host:port``, newest reused first."""

    def __init__(self, client: H1Client, host: str, port: int, tls: bool) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.tls = tls
        #: Oldest on the left (put back on the right, reused from the right).
        self.idle: deque[_Connection] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    def forget(self, conn: _Connection) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    async def get(self, connect_timeout: float) -> _Connection:
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn = self.idle.pop()
            conn.idle = False
            transport = conn.transport
            if (
                not conn.closed
                and transport is not None
                and not transport.is_closing()
                and now - conn.idle_since < self.client.keepalive
            ):
                conn._reset()
                return conn
            conn.abort()  # nothing was written to it: trying the next one is safe
        async with asyncio.timeout(connect_timeout):
            _, conn = await self.client.dialer.connect(
                lambda: _Connection(self), self.host, self.port, self.tls, connect_timeout
            )
        return conn

    def put(self, conn: _Connection) -> None:
        if conn.closed or not conn.keep_alive or not conn.complete or conn.error is not None:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        conn.idle = True
        conn.idle_since = loop.time()
        if len(self.idle) >= self.client.max_idle_per_host:
            self.idle.popleft().abort()
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.client.keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for the keep-alive time; again at the next one's."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.client.keepalive
        idle = self.idle
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().abort()
        if idle:
            self._sweeper = loop.call_at(idle[0].idle_since + self.client.keepalive, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self.idle:
            self.idle.pop().abort()


class H1Response:
    """An answer being read from one pooled connection (the ``UpstreamResponse`` shape)."""

    __slots__ = (
        "_conn",
        "_done",
        "_max_body",
        "_pool",
        "_provider",
        "_timeout",
        "headers",
        "status",
    )

    def __init__(
        self, conn: _Connection, pool: _Pool, provider: str, timeout: float, max_body: int
    ) -> None:
        self._conn = conn
        self._pool = pool
        self._provider = provider
        self._timeout = timeout
        self._max_body = max_body
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    async def _next(self) -> bytes | None:
        """The next body piece, ``None`` at its end; waits at most the idle timeout."""
        conn = self._conn
        while True:
            if conn.pieces:
                return conn.take()
            if conn.error is not None:
                raise UpstreamUnreachable(
                    f"upstream {self._provider} broke off the stream: {_BROKE}",
                    provider=self._provider,
                    detail=str(conn.error),
                )
            if conn.complete:
                return None
            conn.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await conn.waiter
            finally:
                conn.waiter = None

    async def read(self) -> bytes:
        conn = self._conn
        limit = self._max_body
        declared = conn.headers.get("content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise self._too_large(limit)
            parts: list[bytes] = []
            size = 0
            while True:
                try:
                    piece = await self._next()
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"upstream {self._provider} timed out after {self._timeout:g}s",
                        provider=self._provider,
                    ) from None
                except UpstreamUnreachable as exc:
                    raise UpstreamUnreachable(
                        f"upstream {self._provider} failed while sending its answer: {_BROKE}",
                        provider=self._provider,
                        detail=exc.detail,
                    ) from None
                if piece is None:
                    break
                size += len(piece)
                if size > limit:
                    raise self._too_large(limit)
                parts.append(piece)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            self.close()

    def _too_large(self, limit: int) -> UpstreamResponseTooLarge:
        return UpstreamResponseTooLarge(
            self._provider, "an answer", limit, "max_upstream_body_bytes"
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    piece = await self._next()
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"upstream {self._provider} stalled for more than "
                        f"{self._timeout:g}s mid-stream",
                        provider=self._provider,
                    ) from None
                if piece is None:
                    return
                yield piece
        finally:
            self.close()

    def close(self) -> None:
        """Back to the pool if the body was read to its end; else the connection goes."""
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and not conn.pieces:
            self._pool.put(conn)
        else:
            conn.abort()


class H1Client:
    """Pools per ``scheme://host:port``; create and use it inside the serving event loop.

    ``tls`` is the context ``https://`` connections verify with (by default the system
    store's, :class:`~llmrelay.upstream_dial.Dialer`), ``dns_ttl`` how long a host name's
    addresses are reused.
    """

    def __init__(
        self,
        max_body_bytes: int,
        tls: ssl.SSLContext | None = None,
        *,
        keepalive: float = KEEPALIVE_SECONDS,
        max_idle_per_host: int = MAX_IDLE_PER_HOST,
        dns_ttl: float = DNS_TTL_SECONDS,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.keepalive = keepalive
        self.max_idle_per_host = max_idle_per_host
        self.dialer = Dialer(tls, dns_ttl)
        self._pools: dict[str, _Pool] = {}
        #: ``url`` -> (pool key, host, port, tls, request target, Host header).
        self._targets: dict[str, tuple[str, str, int, bool, bytes, bytes]] = {}

    @staticmethod
    def serves(url: str) -> bool:
        """Whether this client can send to ``url``: ``http(s)://`` without credentials
        in it (``user:pass@`` stays on aiohttp, which turns them into basic auth)."""
        scheme, _, rest = url.partition("://")
        return scheme in ("http", "https") and "@" not in rest.split("/", 1)[0]

    def _target(self, url: str) -> tuple[str, str, int, bool, bytes, bytes]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            tls = parts.scheme == "https"
            default = 443 if tls else 80
            host = parts.hostname or ""
            port = parts.port or default
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if not path.isascii():  # percent-encoded as yarl did; what is ASCII stays as is
                path = quote(path, safe="/?=&%:@!$'()*+,;~-._")
            shown = host if host.isascii() else host.encode("idna").decode("ascii")
            if ":" in host:  # an IPv6 literal
                shown = f"[{host}]"
            netloc = shown if port == default else f"{shown}:{port}"
            key = f"{parts.scheme}://{host}:{port}"
            target = (key, host, port, tls, path.encode("ascii"), netloc.encode("ascii"))
            if len(self._targets) < 10_000:
                self._targets[url] = target
        return target

    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
    ) -> H1Response:
        key, host, port, tls, path, netloc = self._target(call.url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, host, port, tls)
        head = _request_head(call, path, netloc, provider)
        try:
            conn = await pool.get(connect_timeout)
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {provider} timed out after {timeout:g}s", provider=provider
            ) from None
        except OSError as exc:
            raise UpstreamUnreachable(
                f"upstream {provider} is unreachable: {describe_os(exc)}",
                provider=provider,
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        loop = asyncio.get_running_loop()
        conn.head = loop.create_future()
        assert conn.transport is not None
        try:
            conn.transport.write(head + call.body if call.body else head)
            async with asyncio.timeout(timeout):
                await conn.head
        except _Broken as exc:
            conn.abort()
            what = (
                "the upstream closed the connection without finishing its answer"
                if exc.before_answer
                else "the upstream sent a malformed HTTP response"
            )
            if "HttpParserError" in str(exc):
                what = "the upstream sent a malformed HTTP response"
            raise UpstreamUnreachable(
                f"upstream {provider} is unreachable: {what}",
                provider=provider,
                detail=str(exc),
            ) from None
        except TimeoutError:
            conn.abort()
            raise UpstreamTimeout(
                f"upstream {provider} timed out after {timeout:g}s", provider=provider
            ) from None
        except BaseException:
            conn.abort()  # cancelled: the upstream must not go on generating for nobody
            raise
        return H1Response(conn, pool, provider, timeout, self.max_body_bytes)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools = {}


def _request_head(call: UpstreamCall, path: bytes, netloc: bytes, provider: str) -> bytes:
    lines = [call.method.encode("ascii"), b" ", path, b" HTTP/1.1\r\nhost: ", netloc, b"\r\n"]
    seen_agent = False
    for name, value in call.headers.items():
        lower = name.lower()
        if lower in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        if lower == "user-agent":
            seen_agent = True
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise UpstreamUnreachable(
                f"upstream {provider} is unreachable: a header of its request holds a "
                "line break (or a colon in its name); check the provider's headers",
                provider=provider,
            )
        # UTF-8 as aiohttp wrote them (a non-Latin-1 value must not crash the call).
        lines += (name.encode(), b": ", value.encode(), b"\r\n")
    if not seen_agent:
        lines.append(b"user-agent: llmrelay\r\n")
    if "accept-encoding" not in call.headers:
        lines.append(b"accept-encoding: identity\r\n")
    lines += (b"content-length: ", str(len(call.body)).encode("ascii"), b"\r\n\r\n")
    return b"".join(lines)
