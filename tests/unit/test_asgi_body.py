"""Reading a request body: the size cap, and the ``body_timeout`` that is only ever ours.

``Request.body`` times the read with its own timer rather than ``asyncio.timeout`` (two
coroutines fewer per call): only that timer's cancellation may become the 408; any other
cancellation of the task (the client gone, the server stopping) must stay one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay.asgi import Request
from llmrelay.errors import PayloadTooLarge, RequestTimeout


def _request(*messages: dict[str, Any], hang: bool = False) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if hang:
            await asyncio.Event().wait()
        raise AssertionError("read past the body")

    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    return Request(scope, receive)


async def test_the_body_in_pieces_is_joined() -> None:
    request = _request(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    assert await request.body(10, timeout=5.0) == b"abcd"


async def test_a_body_past_the_limit_is_refused() -> None:
    request = _request({"type": "http.request", "body": b"x" * 11, "more_body": False})
    with pytest.raises(PayloadTooLarge):
        await request.body(10, timeout=5.0)


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_task_goes_on() -> None:
    request = _request({"type": "http.request", "body": b"ab", "more_body": True}, hang=True)
    with pytest.raises(RequestTimeout) as caught:
        await request.body(10, timeout=0.05)
    assert caught.value.headers == {"connection": "close"}
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # our cancellation was taken back
    await asyncio.sleep(0)  # and none is left pending for the next await


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    request = _request(hang=True)
    reading = asyncio.create_task(request.body(10, timeout=5.0))
    await asyncio.sleep(0.01)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_without_a_timeout_no_timer_is_involved() -> None:
    request = _request({"type": "http.request", "body": b"ok", "more_body": False})
    assert await request.body(10) == b"ok"
