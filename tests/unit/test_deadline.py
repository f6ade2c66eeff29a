"""``within``: a deadline that holds even when the cancelled work's cleanup is slow."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmrelay.store.deadline import within


async def hung_with_slow_cleanup(cleaned: list[str]) -> None:
    try:
        await asyncio.Event().wait()  # a query to a frozen server
    finally:
        await asyncio.sleep(1.0)  # closing the connection: waits on the same server
        cleaned.append("closed")


async def test_the_caller_waits_no_longer_than_the_deadline() -> None:
    cleaned: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(0.1, hung_with_slow_cleanup(cleaned))
    assert time.monotonic() - t0 < 0.9  # asyncio.timeout alone would take 1.1 s here
    assert cleaned == []
    await asyncio.sleep(1.2)
    assert cleaned == ["closed"]  # the cleanup still ran, in the background


async def test_results_and_errors_pass_through_and_cancelling_the_caller_cancels_the_work(
) -> None:
    async def answer() -> int:
        return 42

    async def broken() -> None:
        raise ConnectionRefusedError("stopped")

    assert await within(1, answer()) == 42
    with pytest.raises(ConnectionRefusedError):
        await within(1, broken())
    cleaned: list[str] = []
    caller = asyncio.create_task(within(30, hung_with_slow_cleanup(cleaned)))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(1.2)
    assert cleaned == ["closed"]
