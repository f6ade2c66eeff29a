"""A hard time bound for a database operation on the request path or in readiness.

``asyncio.timeout`` alone is not one: it cancels the operation once, and the cleanup
that follows still awaits the server. Against a hung PostgreSQL (SIGSTOP) SQLAlchemy's
asyncpg driver then spends two more seconds closing the pooled connection that was
mid-query, so a 1 s timeout cost the caller 3 s (measured). :func:`within` runs the
operation as its own task and stops waiting at the deadline; the cancelled task
finishes its cleanup in the background, which callers keep rare (the key store treats
the database as down for a second after a failure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def within(
    seconds: float,
    work: Coroutine[Any, Any, T],
    abandoned: set[asyncio.Task[Any]] | None = None,
) -> T:
    """``await work``, but raise :class:`TimeoutError` after ``seconds`` at the latest.

    ``abandoned``, if given, holds the cancelled tasks until their cleanup ends, so a
    caller can count how many connections a hung server still ties up (the log writer
    stops trying past a few).
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:  # our caller went away: the work goes with it
        _abandon(task, abandoned)
        raise
    if task in done:
        return task.result()
    _abandon(task, abandoned)
    raise TimeoutError(f"no answer from the database within {seconds:g}s")


def _abandon(task: asyncio.Task[Any], abandoned: set[asyncio.Task[Any]] | None) -> None:
    task.cancel()
    if abandoned is not None:
        abandoned.add(task)
        task.add_done_callback(abandoned.discard)
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the abandoned task's outcome as seen (no "exception never retrieved")."""
    if not task.cancelled():
        task.exception()
