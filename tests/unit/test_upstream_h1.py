"""The lean HTTP/1.1 client against a raw socket server: keep-alive reuse, chunked and
content-length bodies, the body cap, a broken chunk, an idle connection the upstream
closed, and header injection refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from llmrelay.errors import UpstreamResponseTooLarge, UpstreamUnreachable
from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream_h1 import H1Client

Answer = Callable[[bytes], bytes]


async def _server(answer: Answer, close_after: bool = False) -> tuple[asyncio.Server, list[int]]:
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

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def _url(server: asyncio.Server) -> str:
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/chat/completions"


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
