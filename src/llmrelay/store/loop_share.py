"""The log writer's share of the event loop: slices of work that keep up under any load.

The writer's loop work (encoding rows for the spool, binding them for the database) is
cut into slices with the loop let run between them, so no request waits behind a whole
batch. A slice of a fixed number of rows is wrong under load: with 64 concurrent calls
one turn of the loop brings about 64 new rows, so a 16-row slice falls further behind
on every turn until the in-memory queue is full and rows are dropped
(``bench/workers.sh`` at c64 and 2,700 req/s dropped 26,645 of 61,565 rows that way,
with the disk idle).

A slice here is a time budget instead: at least ``floor`` seconds, or a quarter of the
time the loop took to come back to the writer, whichever is longer (at most ``cap``).
The writer so keeps about a fifth of a busy loop, far above the few per cent its rows
need, and on an idle loop a request waits at most ``floor`` behind it.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

#: The shortest slice (seconds): what a request may wait behind the writer on an idle loop.
FLOOR = 0.0005
#: The longest slice (seconds), however long the loop took to come back (a GC pause, say).
CAP = 0.01
#: The writer's share of a busy loop: a slice is share / (1 - share) of the wait before it.
SHARE = 0.2


class LoopShare:
    """One stage's slicing: call :meth:`spent` between parts, :meth:`pause` when it says so."""

    __slots__ = ("_cap", "_floor", "_ratio", "_until")

    def __init__(self, floor: float = FLOOR, cap: float = CAP, share: float = SHARE) -> None:
        self._floor = floor
        self._cap = cap
        self._ratio = share / (1.0 - share)
        self._until = perf_counter() + floor

    def spent(self) -> bool:
        """The slice's time is used up: :meth:`pause` before the next part."""
        return perf_counter() >= self._until

    async def pause(self) -> None:
        """Let the loop run once; the next slice is sized by how long that took."""
        before = perf_counter()
        await asyncio.sleep(0)
        now = perf_counter()
        self._until = now + min(self._cap, max(self._floor, (now - before) * self._ratio))
