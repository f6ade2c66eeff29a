"""The lean HTTP/1.1 client against a raw socket server: keep-alive reuse, chunked and
content-length bodies, the body cap, a broken chunk, an idle connection the upstream
closed, header injection refused; timeouts (one timer per connection) and cancellation;
the idle timer and the pool's bound; the DNS cache; TLS against a throwaway CA (verified,
untrusted, wrong host name, a handshake that never comes). Each test runs on asyncio's
loop and on uvloop, the one ``llmrelay serve`` runs on (tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from llmrelay import upstream_h1_connection
from llmrelay.errors import UpstreamResponseTooLarge, UpstreamTimeout, UpstreamUnreachable
from llmrelay.mock_upstream.tls import TlsFiles, client_context, make_tls_files, server_context
from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream_h1 import H1Client

pytestmark = pytest.mark.asyncio(loop_scope="module", loop_factories=["asyncio", "uvloop"])

Answer = Callable[[bytes], bytes]


async def _server(
    answer: Answer, close_after: bool = False, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.Server, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            writer.write(answer(head + body))
            await writer.drain()
            if close_after:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    return server, connections


def _url(server: asyncio.Server, scheme: str = "http", host: str = "127.0.0.1") -> str:
    port = server.sockets[0].getsockname()[1]
    return f"{scheme}://{host}:{port}/v1/chat/completions"


def _json(_: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _chunks(resp: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in resp])


def _call(url: str, **headers: str) -> UpstreamCall:
    return UpstreamCall("POST", url, {"content-type": "application/json", **headers}, b"{}")


async def test_keep_alive_reuses_one_connection() -> None:
    server, connections = await _server(_json)
    client = H1Client(1024)
    for _ in range(3):
        resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
        assert resp.status == 200
        assert resp.headers["content-type"] == "application/json"
        assert await resp.read() == b"{}"
    assert len(connections) == 1
    client.close()
    server.close()


async def test_chunked_stream_and_request_head() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\ndata:\r\n3\r\n ok\r\n0\r\n\r\n"
        )

    server, _ = await _server(answer)
    client = H1Client(1024)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    assert await _chunks(resp.chunks()) == b"data: ok"
    head = seen[0].lower()
    assert head.startswith(b"post /v1/chat/completions http/1.1\r\n")
    assert b"content-length: 2\r\n" in head and b"accept-encoding: identity" in head
    client.close()
    server.close()


async def test_a_repeated_head_is_reused_with_each_call_s_own_length() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return _json(request)

    server, _ = await _server(answer)
    client = H1Client(1024)
    for body in (b"{}", b'{"a": 1}', b"{}"):
        call = UpstreamCall("POST", _url(server), {"authorization": "Bearer k"}, body)
        resp = await client.send(call, provider="p", timeout=5, connect_timeout=5)
        assert await resp.read() == b"{}"
    assert [r.lower().split(b"\r\n\r\n", 1)[1] for r in seen] == [b"{}", b'{"a": 1}', b"{}"]
    for request, length in zip(seen, (2, 8, 2), strict=True):
        assert b"content-length: %d\r\n" % length in request.lower()
    assert len(client._heads) == 1
    other = UpstreamCall("POST", _url(server), {"authorization": "Bearer other"}, b"{}")
    resp = await client.send(other, provider="p", timeout=5, connect_timeout=5)
    assert await resp.read() == b"{}" and b"bearer other" in seen[-1].lower()
    client.close()
    server.close()


async def test_a_slow_reader_pauses_the_socket_so_buffering_stays_bounded() -> None:
    """A fast upstream and a slow client: the gateway stops reading the socket above
    _PAUSE_ABOVE instead of queueing the whole body, and reads on once drained."""
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB

    def answer(_: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    server, _ = await _server(answer)
    client = H1Client(8 * 1024 * 1024)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    conn = resp._conn
    got: list[bytes] = []
    most = 0
    paused_seen = False
    async for piece in resp.chunks():
        got.append(piece)
        await asyncio.sleep(0.01)  # the slow client: the upstream's bytes keep arriving
        most = max(most, conn.buffered)
        paused_seen = paused_seen or conn.paused
    assert b"".join(got) == body
    assert paused_seen
    assert most <= upstream_h1_connection._PAUSE_ABOVE + 256 * 1024  # at most one socket read over
    assert not conn.paused
    client.close()
    server.close()


async def test_body_over_the_cap_is_refused_and_the_connection_dropped() -> None:
    server, connections = await _server(
        lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000
    )
    client = H1Client(1000)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    with pytest.raises(UpstreamResponseTooLarge):
        await resp.read()
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    assert len(connections) == 2  # the half-read one was not reused
    resp.close()
    client.close()
    server.close()


async def test_malformed_chunk_fails_the_read() -> None:
    server, _ = await _server(
        lambda _: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nboom\r\n"
    )
    client = H1Client(1024)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    with pytest.raises(UpstreamUnreachable, match="broke off"):
        await resp.read()
    client.close()
    server.close()


async def test_idle_connection_closed_by_the_upstream_is_not_reused() -> None:
    server, connections = await _server(_json, close_after=True)
    client = H1Client(1024)
    for _ in range(2):
        resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
        assert await resp.read() == b"{}"
        await asyncio.sleep(0.05)  # the server's close arrives while the connection idles
    assert len(connections) == 2
    client.close()
    server.close()


async def test_header_with_a_line_break_is_refused() -> None:
    client = H1Client(1024)
    with pytest.raises(UpstreamUnreachable, match="line break"):
        await client.send(
            _call("http://127.0.0.1:9/x", authorization="Bearer a\r\nx: y"),
            provider="p",
            timeout=5,
            connect_timeout=5,
        )


async def test_refused_connection_in_plain_words() -> None:
    client = H1Client(1024)
    with pytest.raises(UpstreamUnreachable, match="no connection could be made"):
        await client.send(_call("http://127.0.0.1:9/x"), provider="p", timeout=5, connect_timeout=5)


# -- timeouts and cancellation --------------------------------------------------------


class _Held:
    """A server that sends ``prefix`` for each request and then holds the connection,
    recording when the client closes it."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.opened = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.opened += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.prefix)
            await writer.drain()
            await reader.read()  # until the client hangs up
            self.closed.set()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return _url(self.server)


async def test_an_answer_that_never_starts_times_out_and_the_connection_goes() -> None:
    held = _Held(b"")
    url = await held.start()
    client = H1Client(1024)
    with pytest.raises(UpstreamTimeout, match=r"timed out after 0\.2s"):
        await client.send(_call(url), provider="p", timeout=0.2, connect_timeout=5)
    await asyncio.wait_for(held.closed.wait(), 5)
    client.close()
    assert held.server is not None
    held.server.close()


async def test_read_timeout_mid_body() -> None:
    held = _Held(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    url = await held.start()
    client = H1Client(1024)
    resp = await client.send(_call(url), provider="p", timeout=0.2, connect_timeout=5)
    with pytest.raises(UpstreamTimeout, match=r"timed out after 0\.2s"):
        await resp.read()
    await asyncio.wait_for(held.closed.wait(), 5)  # closed, not pooled half-read
    client.close()
    assert held.server is not None
    held.server.close()


async def test_stream_stall_times_out() -> None:
    held = _Held(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n")
    url = await held.start()
    client = H1Client(1024)
    resp = await client.send(_call(url), provider="p", timeout=0.2, connect_timeout=5)
    got: list[bytes] = []
    with pytest.raises(UpstreamTimeout, match=r"stalled for more than 0\.2s mid-stream"):
        async for piece in resp.chunks():
            got.append(piece)
    assert got == [b"data:"]
    await asyncio.wait_for(held.closed.wait(), 5)
    client.close()
    assert held.server is not None
    held.server.close()


async def test_a_stream_that_keeps_coming_outlives_its_idle_timeout_on_few_timers() -> None:
    """The idle timeout is per wait, not for the whole stream: pieces 0.1 s apart for
    1.2 s under a 0.6 s timeout all arrive. The connection's one timer is re-armed when
    it fires, not made anew per read."""
    pieces = 12

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(pieces):
            writer.write(b"5\r\ndata:\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = H1Client(1024)
    resp = await client.send(_call(_url(server)), provider="p", timeout=0.6, connect_timeout=5)
    conn = resp._conn
    got: list[bytes] = []
    timers: list[object] = []
    async for piece in resp.chunks():
        got.append(piece)
        if conn.timer is not None and all(conn.timer is not t for t in timers):
            timers.append(conn.timer)
    assert got == [b"data:"] * pieces
    assert 1 <= len(timers) < pieces // 2  # about 1.2 s / 0.6 s of them, not one per read
    client.close()
    server.close()


async def test_a_pooled_connection_keeps_its_timer_and_a_shorter_timeout_still_holds() -> None:
    """Calls on one kept-alive connection share its timer; a call with a shorter timeout
    than the timer is armed for still times out on time."""
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            requests += 1
            if requests == 3:
                await reader.read()  # the third request is never answered
                return
            writer.write(_json(b""))
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = H1Client(1024)
    timers = []
    for _ in range(2):
        resp = await client.send(_call(_url(server)), provider="p", timeout=30, connect_timeout=5)
        timers.append(resp._conn.timer)
        assert await resp.read() == b"{}"
    assert timers[0] is not None and timers[0] is timers[1]
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"timed out after 0\.2s"):
        await client.send(_call(_url(server)), provider="p", timeout=0.2, connect_timeout=5)
    assert loop.time() - start < 5
    client.close()
    server.close()


async def test_cancelled_mid_read_closes_the_connection_instead_of_pooling_it() -> None:
    held = _Held(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    url = await held.start()
    client = H1Client(1024)
    resp = await client.send(_call(url), provider="p", timeout=30, connect_timeout=5)
    reading = asyncio.ensure_future(resp.read())
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.wait_for(held.closed.wait(), 5)  # the upstream sees the hang-up
    assert all(not pool.idle for pool in client._pools.values())
    held.closed.clear()
    resp = await client.send(_call(url), provider="p", timeout=30, connect_timeout=5)
    assert held.opened == 2  # a new connection, not the abandoned one
    resp.close()
    client.close()
    assert held.server is not None
    held.server.close()


async def test_cancelled_while_waiting_for_the_head_closes_the_connection() -> None:
    held = _Held(b"")
    url = await held.start()
    client = H1Client(1024)
    sending = asyncio.ensure_future(
        client.send(_call(url), provider="p", timeout=30, connect_timeout=5)
    )
    await asyncio.sleep(0.05)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await asyncio.wait_for(held.closed.wait(), 5)
    client.close()
    assert held.server is not None
    held.server.close()


# -- the pool: idle timer, bound, connections the server closed -------------------------


async def test_idle_connections_are_closed_on_a_timer() -> None:
    server, connections = await _server(_json)
    client = H1Client(1024, keepalive=0.2)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    assert await resp.read() == b"{}"
    (pool,) = client._pools.values()
    assert len(pool.idle) == 1
    conn = pool.idle[0]
    await asyncio.sleep(0.5)  # no further call: the timer alone closes it
    assert not pool.idle and conn.closed
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    assert await resp.read() == b"{}"
    assert len(connections) == 2
    client.close()
    server.close()


async def test_the_idle_pool_per_host_is_bounded() -> None:
    server, connections = await _server(_json)
    client = H1Client(1024, max_idle_per_host=2)
    url = _url(server)
    answers = await asyncio.gather(
        *(client.send(_call(url), provider="p", timeout=5, connect_timeout=5) for _ in range(4))
    )
    for resp in answers:
        assert await resp.read() == b"{}"
    (pool,) = client._pools.values()
    assert len(connections) == 4 and len(pool.idle) == 2
    client.close()
    server.close()


async def test_bytes_arriving_on_an_idle_connection_drop_it() -> None:
    sent: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(_json(b""))
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = H1Client(1024)
    resp = await client.send(_call(_url(server)), provider="p", timeout=5, connect_timeout=5)
    assert await resp.read() == b"{}"
    (pool,) = client._pools.values()
    assert len(pool.idle) == 1
    # An unasked-for answer (a server's 408 on idle connections): never read as the next
    # call's answer.
    sent[0].write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    await asyncio.sleep(0.1)
    assert not pool.idle
    client.close()
    server.close()


# -- DNS -------------------------------------------------------------------------------


async def test_names_are_resolved_once_and_again_when_their_address_fails() -> None:
    server, _ = await _server(_json)
    port = server.sockets[0].getsockname()[1]
    client = H1Client(1024, keepalive=0)  # every call a new connection
    url = _url(server, host="localhost")
    lookups = 0
    real = client.dialer._lookup

    async def counted(key: tuple[str, int]) -> list[tuple[int, tuple[object, ...]]]:
        nonlocal lookups
        lookups += 1
        return await real(key)

    client.dialer._lookup = counted  # type: ignore[method-assign]
    for _ in range(3):
        resp = await client.send(_call(url), provider="p", timeout=5, connect_timeout=5)
        assert await resp.read() == b"{}"
    assert lookups == 1
    # The host "moved": its cached address refuses. That call fails, the entry goes, and
    # the next connect looks the name up again.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
    client.dialer._dns[("localhost", port)] = (math.inf, [(socket.AF_INET, dead)])
    with pytest.raises(UpstreamUnreachable, match="no connection could be made"):
        await client.send(_call(url), provider="p", timeout=5, connect_timeout=5)
    resp = await client.send(_call(url), provider="p", timeout=5, connect_timeout=5)
    assert await resp.read() == b"{}"
    assert lookups == 2
    client.close()
    server.close()


async def test_an_unknown_host_name_in_plain_words() -> None:
    client = H1Client(1024)
    with pytest.raises(UpstreamUnreachable, match="its host name could not be resolved"):
        await client.send(
            _call("https://nonexistent.invalid/v1"), provider="p", timeout=5, connect_timeout=5
        )


# -- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def test_https_verified_against_the_ca_and_kept_alive(tls_files: TlsFiles) -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return _json(request)

    server, connections = await _server(answer, tls=server_context(tls_files))
    client = H1Client(1024, client_context(tls_files))
    for host in ("127.0.0.1", "localhost"):  # the IP address and the DNS name in the cert
        for _ in range(2):
            url = _url(server, "https", host)
            resp = await client.send(_call(url), provider="p", timeout=5, connect_timeout=5)
            assert resp.status == 200 and await resp.read() == b"{}"
    assert len(connections) == 2  # one per host name, reused
    port = server.sockets[0].getsockname()[1]
    assert f"host: localhost:{port}\r\n".encode() in seen[-1].lower()
    (pool, _) = client._pools.values()
    transport = pool.idle[0].transport
    assert transport is not None
    ssl_object = transport.get_extra_info("ssl_object")
    assert ssl_object is not None and ssl_object.selected_alpn_protocol() in (None, "http/1.1")
    client.close()
    server.close()


async def test_https_stream_over_tls(tls_files: TlsFiles) -> None:
    server, _ = await _server(
        lambda _: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\ndata:\r\n3\r\n ok\r\n0\r\n\r\n"
        ),
        tls=server_context(tls_files),
    )
    client = H1Client(1024, client_context(tls_files))
    resp = await client.send(
        _call(_url(server, "https")), provider="p", timeout=5, connect_timeout=5
    )
    assert await _chunks(resp.chunks()) == b"data: ok"
    client.close()
    server.close()


async def test_untrusted_certificate_is_refused_in_plain_words(tls_files: TlsFiles) -> None:
    server, _ = await _server(_json, tls=server_context(tls_files))
    client = H1Client(1024)  # the system store: the throwaway CA is not in it
    with pytest.raises(UpstreamUnreachable, match="its TLS certificate was not accepted") as err:
        await client.send(_call(_url(server, "https")), provider="p", timeout=5, connect_timeout=5)
    assert err.value.detail is not None and "CERTIFICATE_VERIFY_FAILED" in err.value.detail
    assert err.value.status == 502
    client.close()
    server.close()


async def test_certificate_for_another_host_name_is_refused(
    tls_files: TlsFiles, tmp_path: Path
) -> None:
    other = make_tls_files(tmp_path, names=("api.example.com",))
    server, _ = await _server(_json, tls=server_context(other))
    client = H1Client(1024, client_context(other))  # trusted CA, wrong name
    for host in ("localhost", "127.0.0.1"):
        with pytest.raises(UpstreamUnreachable, match="its TLS certificate was not accepted") as e:
            await client.send(
                _call(_url(server, "https", host)), provider="p", timeout=5, connect_timeout=5
            )
        assert e.value.detail is not None and "mismatch" in e.value.detail.lower()
    client.close()
    server.close()


async def test_a_handshake_that_never_comes_times_out_within_the_connect_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts TCP, never answers the ClientHello

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = H1Client(1024, ssl.create_default_context())
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(UpstreamTimeout):
        await client.send(
            _call(_url(server, "https")), provider="p", timeout=30, connect_timeout=0.3
        )
    assert loop.time() - start < 5
    client.close()
    server.close()


async def test_plain_http_server_at_an_https_url_is_a_failed_handshake() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello, answered as a plain HTTP server would
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = H1Client(1024, ssl.create_default_context())
    with pytest.raises(UpstreamUnreachable, match="the TLS handshake with it failed"):
        await client.send(_call(_url(server, "https")), provider="p", timeout=5, connect_timeout=5)
    client.close()
    server.close()
