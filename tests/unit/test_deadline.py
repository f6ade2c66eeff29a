"""``within``: a deadline that holds even when the cancelled work's cleanup is slow.

The cleanup here blocks on an event the test controls (a connection close waiting on a
frozen server), so "the caller did not wait for the cleanup" is checked by the caller
returning while the cleanup is still blocked, never by timing the call.
"""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.store.deadline import within

#: Hang guard only: how long the test waits for something that must happen.
HANG_GUARD = 10.0


class HungQuery:
    """A query to a frozen server whose cleanup also waits on that server."""

    def __init__(self) -> None:
        self.cleanup_started = asyncio.Event()
        self.server_answers = asyncio.Event()
        self.closed = asyncio.Event()

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()  # the query: never answered
        finally:
            self.cleanup_started.set()
            await self.server_answers.wait()  # closing the connection
            self.closed.set()


async def test_the_caller_waits_no_longer_than_the_deadline() -> None:
    query = HungQuery()
    abandoned: set[asyncio.Task[object]] = set()
    caller = asyncio.create_task(within(0.1, query.run(), abandoned))
    done, _ = await asyncio.wait({caller}, timeout=HANG_GUARD)
    assert caller in done, "within() waited for the cleanup (asyncio.timeout alone would)"
    assert isinstance(caller.exception(), TimeoutError)
    assert query.cleanup_started.is_set() and not query.closed.is_set()
    assert len(abandoned) == 1  # the cleanup is still running, in the background
    query.server_answers.set()
    await asyncio.wait_for(query.closed.wait(), HANG_GUARD)
    await asyncio.sleep(0)  # the task's done callbacks run
    assert abandoned == set()


async def test_results_and_errors_pass_through_and_cancelling_the_caller_cancels_the_work() -> None:
    async def answer() -> int:
        return 42

    async def broken() -> None:
        raise ConnectionRefusedError("stopped")

    assert await within(1, answer()) == 42
    with pytest.raises(ConnectionRefusedError):
        await within(1, broken())
    query = HungQuery()
    caller = asyncio.create_task(within(30, query.run()))
    await asyncio.sleep(0)  # the work has started
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(query.cleanup_started.wait(), HANG_GUARD)  # the work was cancelled
    query.server_answers.set()
    await asyncio.wait_for(query.closed.wait(), HANG_GUARD)
