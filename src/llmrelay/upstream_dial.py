"""Opening upstream connections: the DNS cache, TCP connect, and verified TLS.

DNS: host names are resolved through a small cache (:data:`DNS_TTL_SECONDS`; lookups of
one host shared while in flight) instead of once per new connection. The cached
addresses are tried in order, and an entry whose addresses all refuse is dropped, so a
host that moved is looked up again on the next connect; connections already open keep
the address they were opened to until they idle out (as any keep-alive client does).
Why a cache at all when connections are kept alive: a burst (a cold start at c64, a
pool emptied by an upstream's restart) opens many connections at once, each a
``getaddrinfo`` in the loop's thread pool and a resolver round trip; one shared lookup
serves them all. aiohttp cached for 300 s; 60 s here, since a miss costs one lookup a
minute per host.

TLS: ``ssl.create_default_context()`` (the system store, as aiohttp's default context;
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name an operator's own bundle), built in a thread on
the first ``https://`` connect since loading the store takes 10-60 ms the event loop
must not wait; SNI and host name verification, only ``http/1.1`` offered by ALPN, the
handshake under the connect timeout (the caller's ``asyncio.timeout`` covers the lookup,
the TCP connect and the handshake together).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

#: Seconds a host name's addresses are reused for new connections.
DNS_TTL_SECONDS = 60.0

#: ``(family, sockaddr)`` pairs one host name resolved to, in the resolver's order.
Addresses = list[tuple[int, tuple[Any, ...]]]

P = TypeVar("P", bound=asyncio.Protocol)


class Dialer:
    """Opens connections for one client: its DNS cache and its TLS context."""

    def __init__(self, tls: ssl.SSLContext | None = None, dns_ttl: float = DNS_TTL_SECONDS):
        self.dns_ttl = dns_ttl
        self._tls = tls
        self._tls_loading: asyncio.Future[ssl.SSLContext] | None = None
        #: ``(host, port)`` -> (expiry, addresses); lookups in flight are shared.
        self._dns: dict[tuple[str, int], tuple[float, Addresses]] = {}
        self._dns_pending: dict[tuple[str, int], asyncio.Future[Addresses]] = {}

    async def connect(
        self,
        protocol: Callable[[], P],
        host: str,
        port: int,
        tls: bool,
        connect_timeout: float,
    ) -> tuple[asyncio.BaseTransport, P]:
        """A connection to ``host:port`` (TLS verified for ``host`` when ``tls``)."""
        context = await self.tls_context() if tls else None
        addresses = await self.resolve(host, port)
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                # The socket's own words ("Connection refused"), as a connect by host name
                # reported them; uvloop's "Connect call failed" says less.
                error = type(exc)(exc.errno, os.strerror(exc.errno)) if exc.errno else exc
                continue
            except BaseException:
                sock.close()
                raise
            try:
                return await loop.create_connection(
                    protocol,
                    sock=sock,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    ssl_handshake_timeout=connect_timeout if context is not None else None,
                )
            except BaseException:
                sock.close()
                raise  # a TLS failure is the host's, not this address's: no other tried
        self.forget_addresses(host, port)  # the host may have moved
        raise error or OSError("no address to connect to")

    async def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            if self._tls_loading is None:
                self._tls_loading = asyncio.ensure_future(asyncio.to_thread(default_tls_context))
            # Shielded: one caller's connect timeout must not cancel the others' wait.
            self._tls = await asyncio.shield(self._tls_loading)
        return self._tls

    async def resolve(self, host: str, port: int) -> Addresses:
        """``host``'s addresses, from the cache while fresh (IP literals for good)."""
        key = (host, port)
        cached = self._dns.get(key)
        if cached is not None and cached[0] > asyncio.get_running_loop().time():
            return cached[1]
        pending = self._dns_pending.get(key)
        if pending is None:
            pending = self._dns_pending[key] = asyncio.ensure_future(self._lookup(key))
            pending.add_done_callback(lambda done: self._looked_up(key, done))
        # Shielded: one caller's connect timeout must not cancel the others' lookup.
        return await asyncio.shield(pending)

    async def _lookup(self, key: tuple[str, int]) -> Addresses:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
        addresses: Addresses = []
        for family, _, _, _, address in infos:
            if (family, address) not in addresses:
                addresses.append((family, address))
        try:
            ipaddress.ip_address(key[0].partition("%")[0])
            expiry = math.inf  # an address already: nothing to go stale
        except ValueError:
            expiry = loop.time() + self.dns_ttl
        if len(self._dns) >= 1000:
            self._dns.clear()
        self._dns[key] = (expiry, addresses)
        return addresses

    def _looked_up(self, key: tuple[str, int], done: asyncio.Future[Addresses]) -> None:
        self._dns_pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved, even when every caller gave up waiting

    def forget_addresses(self, host: str, port: int) -> None:
        self._dns.pop((host, port), None)


def default_tls_context() -> ssl.SSLContext:
    """Verifying, with the system's CAs (as aiohttp's default), offering only HTTP/1.1."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def describe_os(exc: OSError) -> str:
    """:func:`llmrelay.upstream_aiohttp.describe`'s words for a connect's socket and TLS
    errors."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake with it failed"
    if isinstance(exc, socket.gaierror):
        return "its host name could not be resolved"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    return "no connection could be made to it (refused or unreachable)"
