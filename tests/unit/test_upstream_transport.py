"""Which client :class:`HttpTransport` sends a call with: the lean one for ``http(s)://``,
aiohttp (imported on first use) only for a base URL with credentials in it; on asyncio's
loop and on uvloop (tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from llmrelay.providers.base import UpstreamCall
from llmrelay.upstream import HttpTransport

pytestmark = pytest.mark.asyncio(loop_scope="module", loop_factories=["asyncio", "uvloop"])


async def _recording_server() -> tuple[asyncio.Server, list[bytes]]:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, heads


async def test_plain_urls_go_through_the_lean_client() -> None:
    server, heads = await _recording_server()
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport()
    call = UpstreamCall("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
    resp = await transport.send(call, provider="p", timeout=5, connect_timeout=5, stream=False)
    assert await resp.read() == b"{}"
    assert transport._aiohttp is None  # never built, never imported for this call
    assert len(heads) == 1 and b"authorization" not in heads[0].lower()
    await transport.close()
    server.close()


async def test_credentials_in_the_url_go_through_aiohttp_as_basic_auth() -> None:
    server, heads = await _recording_server()
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport()
    call = UpstreamCall("POST", f"http://user:secret@127.0.0.1:{port}/v1/x", {}, b"{}")
    resp = await transport.send(call, provider="p", timeout=5, connect_timeout=5, stream=False)
    assert await resp.read() == b"{}"
    assert transport._aiohttp is not None
    lines = [line.split(b":", 1) for line in heads[0].split(b"\r\n")[1:] if b":" in line]
    auth = {name.lower(): value.strip() for name, value in lines}[b"authorization"]
    assert auth == b"Basic " + base64.b64encode(b"user:secret")
    await transport.close()
    server.close()
