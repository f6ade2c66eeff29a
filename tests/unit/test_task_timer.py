"""TaskTimer: its own expiry is a timeout; anyone else's cancellation passes through."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.task_timer import TaskTimer


async def _limited(seconds: float, work: float) -> str:
    timer = TaskTimer(seconds)
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if timer.fired():
            raise TimeoutError from None
        raise
    except BaseException:
        timer.ended_otherwise()
        raise
    finally:
        timer.cancel()


async def test_expiry_is_a_timeout_and_the_task_is_not_left_cancelling() -> None:
    task = asyncio.ensure_future(_limited(0.01, 5))
    with pytest.raises(TimeoutError):
        await task
    assert task.cancelling() == 0


async def test_work_within_the_limit_is_untouched_and_the_timer_is_gone() -> None:
    assert await _limited(5, 0) == "done"
    await asyncio.sleep(0)  # a timer left armed would cancel a later await here


async def test_an_outside_cancel_is_not_taken_for_the_timer() -> None:
    task = asyncio.ensure_future(_limited(5, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
