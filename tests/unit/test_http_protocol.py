"""The server protocol's disconnect extension, on its own (no socket, no application run).

Calls in flight under ``llmrelay serve`` are cut short through it when their client's
connection is lost (tests/faults/test_lifecycle.py covers that end to end); here: who is
told, when, and that a withdrawn callback is not.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.server import ServerState

from llmrelay.asgi import disconnect_watch
from llmrelay.http_protocol import ConnectionLimits, LimitedConfig, LimitedHttpToolsProtocol


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is run here")


def _protocol(app: Any = _app) -> LimitedHttpToolsProtocol:
    config = LimitedConfig(app, limits=ConnectionLimits(), lifespan="off", log_config=None)
    config.load()
    protocol = LimitedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol.connection_made(_Transport())
    return protocol


async def test_each_request_scope_offers_the_watch() -> None:
    protocol = _protocol()
    protocol.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")  # head begun
    watch = disconnect_watch(dict(protocol.scope))
    assert watch is not None
    fired: list[str] = []
    watch(lambda: fired.append("call"))
    protocol.connection_lost(None)
    assert fired == ["call"]


async def test_a_lost_connection_tells_the_calls_still_watching_once() -> None:
    protocol = _protocol()
    fired: list[str] = []
    protocol._watch_disconnect(lambda: fired.append("a"))
    withdraw_b = protocol._watch_disconnect(lambda: fired.append("b"))
    withdraw_b()  # call b ended before the connection was lost
    withdraw_b()  # withdrawing twice is harmless
    protocol.connection_lost(None)
    protocol.connection_lost(None)
    assert fired == ["a"]


async def test_watching_a_connection_already_lost_fires_at_once() -> None:
    protocol = _protocol()
    protocol.connection_lost(None)
    fired: list[str] = []
    withdraw = protocol._watch_disconnect(lambda: fired.append("late"))
    assert fired == ["late"]
    withdraw()


def test_other_servers_offer_nothing() -> None:
    assert disconnect_watch({"type": "http"}) is None
    assert disconnect_watch({"type": "http", "extensions": {"http.response.trailers": {}}}) is None


# -- the response's head and body, written by the protocol's own cycle -------------------
_POST = (
    b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n"
    b"Expect: 100-continue\r\n\r\n{}"
)


async def _serve(app: Any, request: bytes = _POST) -> tuple[bytes, LimitedHttpToolsProtocol]:
    protocol = _protocol(app)
    protocol.data_received(request)
    await asyncio.gather(*protocol.tasks)
    transport = protocol.transport
    assert isinstance(transport, _Transport)
    return b"".join(transport.written), protocol


async def test_a_sized_answer_is_written_as_uvicorn_writes_it() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope, body=(await receive())["body"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Content-Length", b"5"), (b"x-request-id", b"abc")],
            }
        )
        await send({"type": "http.response.body", "body": b"hel", "more_body": True})
        await send({"type": "http.response.body", "body": b"lo"})

    out, protocol = await _serve(app)
    assert out == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-request-id: abc\r\n\r\nhello"
    )
    assert seen["method"] == "POST" and seen["path"] == "/v1/chat/completions"
    assert seen["query_string"] == b"x=1" and seen["body"] == b"{}"
    assert (b"expect", b"100-continue") in seen["headers"]
    assert protocol.cycle.response_complete and not protocol.transport.is_closing()


async def test_an_unsized_answer_is_chunked_and_connection_close_closes() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})

    out, protocol = await _serve(app)
    assert out == (  # (no 100 Continue: the application never asked for the body)
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    )
    assert protocol.transport.is_closing()


async def test_a_header_with_a_forbidden_byte_is_not_written() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-ok", b"fine"), (b"x-bad", b"a\r\nset-cookie: b")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def bad_name(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-ok", b"fine"), (b"x bad", b"v")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    for each in (app, bad_name):
        out, protocol = await _serve(each)
        # As uvicorn: nothing of that head is written and the connection is closed.
        assert out == b""
        assert protocol.transport.is_closing()


# -- the keep-alive timeout: one lazily re-armed timer per connection ----------------------
async def _answer_ok(scope: Any, receive: Any, send: Any) -> None:
    assert (await receive())["body"] == b"{}"
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def _keep_alive_protocol(seconds: float) -> LimitedHttpToolsProtocol:
    config = LimitedConfig(
        _answer_ok,
        limits=ConnectionLimits(),
        lifespan="off",
        log_config=None,
        timeout_keep_alive=seconds,  # type: ignore[arg-type]  # (an int in uvicorn's hints)
    )
    config.load()
    protocol = LimitedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol.connection_made(_Transport())
    return protocol


_SMALL = b"POST /v1/x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    protocol = _keep_alive_protocol(0.2)
    protocol.data_received(_SMALL)
    await asyncio.gather(*protocol.tasks)
    assert not protocol.transport.is_closing()
    await asyncio.sleep(0.1)
    # The next request, 0.1 s later: its own idle time counts from its answer.
    protocol.data_received(_SMALL)
    await asyncio.sleep(0)
    await asyncio.gather(*protocol.tasks)
    await asyncio.sleep(0.15)  # the first timer's moment has passed: re-armed, not closed
    assert not protocol.transport.is_closing()
    await asyncio.sleep(0.15)
    assert protocol.transport.is_closing()


async def test_a_request_in_progress_is_not_cut_by_the_keep_alive_timeout() -> None:
    protocol = _keep_alive_protocol(0.05)
    protocol.data_received(_SMALL)
    await asyncio.gather(*protocol.tasks)
    protocol.data_received(b"POST /v1/x HTTP/1.1\r\nhost: x\r\n")  # a head still coming
    await asyncio.sleep(0.15)
    assert not protocol.transport.is_closing()
    protocol.connection_lost(None)
    assert protocol.timeout_keep_alive_task is None
