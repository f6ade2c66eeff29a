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

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is run here")


def _protocol() -> LimitedHttpToolsProtocol:
    config = LimitedConfig(_app, limits=ConnectionLimits(), lifespan="off", log_config=None)
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
