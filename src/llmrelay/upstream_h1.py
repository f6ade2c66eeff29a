"""A lean keep-alive HTTP/1.1 client on httptools, for ``http://`` and ``https://`` upstreams.

aiohttp's client costs ~130 Python calls per relayed request (request and payload
objects, header multidicts, timers, the stream reader); this one costs ~20: a pool of
idle connections per ``host:port``, the request written in one ``write`` (its head built
once per method, URL and headers, then reused with each call's length), the response
parsed by httptools (the C parser uvicorn uses) into a status, a lower-cased header dict
and body pieces. This module holds the pool and the client (the request's head, the wait
for the answer's); one connection, its parser, its timer and the reader of its answer are
in :mod:`llmrelay.upstream_h1_connection`.

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
``max_connections`` bounds them. Taking an idle connection is a plain call; only a new
connection (DNS cache, TCP, TLS, opened by :mod:`llmrelay.upstream_dial`) is awaited.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import quote, urlsplit

from llmrelay.errors import UpstreamTimeout, UpstreamUnreachable
from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream_dial import DNS_TTL_SECONDS, Dialer, describe_os
from llmrelay.upstream_h1_connection import Broken, Connection, H1Response

#: Seconds an idle pooled connection is kept (aiohttp's ``keepalive_timeout`` before).
KEEPALIVE_SECONDS = 60.0
#: Idle connections kept per ``scheme://host:port``; one more put back closes the oldest.
MAX_IDLE_PER_HOST = 100


class _Pool:
    """Idle keep-alive connections of one ``scheme://host:port``, newest reused first."""

    def __init__(self, client: H1Client, host: str, port: int, tls: bool) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.tls = tls
        #: Oldest on the left (put back on the right, reused from the right).
        self.idle: deque[Connection] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    def forget(self, conn: Connection) -> None:
        if conn.idle:
            try:
                self.idle.remove(conn)
            except ValueError:
                pass

    def take_idle(self) -> Connection | None:
        """The newest idle connection still open, ready for a request; None if none is."""
        idle = self.idle
        if not idle:
            return None
        now = self.loop.time()
        keepalive = self.client.keepalive
        while idle:
            conn = idle.pop()
            conn.idle = False
            transport = conn.transport
            if (
                not conn.closed
                and transport is not None
                and not transport.is_closing()
                and now - conn.idle_since < keepalive
            ):
                conn.reset()
                return conn
            conn.abort()  # nothing was written to it: trying the next one is safe
        return None

    async def connect(self, connect_timeout: float) -> Connection:
        async with asyncio.timeout(connect_timeout):
            _, conn = await self.client.dialer.connect(
                lambda: Connection(self), self.host, self.port, self.tls, connect_timeout
            )
        return conn

    def put(self, conn: Connection) -> None:
        if conn.closed or not conn.keep_alive or not conn.complete or conn.error is not None:
            conn.abort()
            return
        conn.idle = True
        conn.idle_since = self.loop.time()
        if len(self.idle) >= self.client.max_idle_per_host:
            self.idle.popleft().abort()
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.client.keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for the keep-alive time; again at the next one's."""
        self._sweeper = None
        deadline = self.loop.time() - self.client.keepalive
        idle = self.idle
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().abort()
        if idle:
            when = idle[0].idle_since + self.client.keepalive
            self._sweeper = self.loop.call_at(when, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self.idle:
            self.idle.pop().abort()


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
        #: (method, url, *headers) -> the request's head up to its content-length: a
        #: provider's calls repeat one head (built ~3 us, looked up ~0.9 us).
        self._heads: dict[tuple[object, ...], bytes] = {}

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
        shape = (call.method, call.url, *call.headers.items())
        head = self._heads.get(shape)
        if head is None:
            head = _request_head(call, path, netloc, provider)
            if len(self._heads) >= 1000:  # per-call headers (a trace id): not kept for long
                self._heads.clear()
            self._heads[shape] = head
        head += b"content-length: %d\r\n\r\n" % len(call.body)
        conn = pool.take_idle()
        if conn is None:
            try:
                conn = await pool.connect(connect_timeout)
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
        assert conn.transport is not None
        try:
            conn.transport.write(head + call.body if call.body else head)
            while not conn.answered:  # one wait: only the head (or a failure) wakes it
                if conn.error is not None:
                    raise conn.error
                await conn.wait(timeout)
        except Broken as exc:
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
        return H1Response(conn, provider, timeout, self.max_body_bytes)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools = {}


def _request_head(call: UpstreamCall, path: bytes, netloc: bytes, provider: str) -> bytes:
    """The request line and headers, all but ``content-length`` and the blank line."""
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
    return b"".join(lines)
