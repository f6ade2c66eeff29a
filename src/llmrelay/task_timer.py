"""A time limit on the current task without ``asyncio.timeout``'s context manager.

``asyncio.timeout`` costs two coroutines, a reschedule and about a dozen Python calls
per use; on the request path (the body read, each router attempt) that was measurable
(bench/instructions.py). :class:`TaskTimer` does the same with one loop timer: at the
limit it cancels the task, and only that cancellation, not a client's or a drain's,
is reported as the timer's, counted with ``uncancel()`` as ``asyncio.timeout`` counts.

    timer = TaskTimer(seconds)
    try:
        ...
    except asyncio.CancelledError:
        if timer.fired():
            raise TimeoutError from None
        raise
    except BaseException:
        timer.ended_otherwise()
        raise
    finally:
        timer.cancel()
"""

from __future__ import annotations

import asyncio


class TaskTimer:
    """Cancels the current task after ``seconds`` unless :meth:`cancel`\\ed first."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def fired(self) -> bool:
        """In ``except CancelledError``: the cancellation is this timer's own."""
        return self._expired and self._task.uncancel() <= self._cancelling

    def ended_otherwise(self) -> None:
        """In ``except BaseException``: the block ended by another error after the
        timer ran; its cancellation is taken back, as ``asyncio.timeout`` does."""
        if self._expired:
            self._task.uncancel()

    def cancel(self) -> None:
        self._handle.cancel()
