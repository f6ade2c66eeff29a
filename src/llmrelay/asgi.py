"""Just enough ASGI to serve the proxy hot path without a framework.

Starlette or FastAPI would cost a request object, middleware stack and validation per
call; the relay needs only the path, a few headers and the body bytes, so it reads
them straight from the ASGI scope and writes raw ``http.response.*`` messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from llmrelay.errors import GatewayError, PayloadTooLarge, RequestTimeout
from llmrelay.task_timer import TaskTimer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

#: An ASGI extension of llmrelay's own server (``http_protocol.py``), in
#: ``scope["extensions"]``: ``{"watch": watch}``, where ``watch(callback)`` has
#: ``callback()`` called once if the client's connection is lost (at once if it is gone
#: already) and returns the function that withdraws it. A call in flight is cut short
#: through it without a task per call waiting on ``receive`` for ``http.disconnect``
#: (~6 % of a call's instructions, bench/RESULTS.md); under other servers the pipeline
#: watches ``receive`` as before.
DISCONNECT_EXTENSION = "llmrelay.disconnect"
Unwatch = Callable[[], None]
Watch = Callable[[Callable[[], None]], Unwatch]

JSON_CT = (b"content-type", b"application/json")
SSE_HEADERS: RawHeaders = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Request:
    """One HTTP request: the headers decoded once, body read with a size cap."""

    __slots__ = ("headers", "method", "path", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.path: str = scope["path"]
        self.method: str = scope["method"]
        #: Lower-case header names; a repeated header keeps its last value. Decoded at
        #: once: every model call reads them (about eight times), and a property was a
        #: Python call per read.
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
        }

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def query(self) -> dict[str, str]:
        raw = self.scope.get("query_string", b"")
        if not raw:
            return {}
        return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}

    @property
    def client_ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    async def body(self, limit: int, timeout: float | None = None) -> bytes:
        """Read the whole body, refusing early (413) once it passes ``limit`` bytes, and
        with 408 when it has not all arrived within ``timeout`` seconds (a client that
        dribbles its body would otherwise hold the connection and a task forever)."""
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        if timeout is None:
            return await self._read_body(limit)
        timer = TaskTimer(timeout)  # asyncio.timeout's work, cheaper (task_timer.py)
        try:
            return await self._read_body(limit)
        except asyncio.CancelledError:
            if timer.fired():
                raise RequestTimeout(
                    f"the request body did not arrive within {timeout:g}s (body_timeout)",
                    headers={"connection": "close"},
                ) from None
            raise
        except BaseException:
            timer.ended_otherwise()
            raise
        finally:
            timer.cancel()

    async def _read_body(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def disconnect_watch(scope: Scope) -> Watch | None:
    """The server's :data:`DISCONNECT_EXTENSION`, if it offers one."""
    extensions = scope.get("extensions")
    if not extensions:
        return None
    offered = extensions.get(DISCONNECT_EXTENSION)
    return offered.get("watch") if offered else None


class ClientDisconnected(Exception):
    """The client went away before we could answer."""


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: RawHeaders,
    content_type: tuple[bytes, bytes] = JSON_CT,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [content_type, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(
    send: Send, exc: GatewayError, headers: RawHeaders, body: bytes | None = None
) -> None:
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send_bytes(send, exc.status, exc.body() if body is None else body, headers + extra)


def encode_headers(headers: dict[str, str]) -> RawHeaders:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
