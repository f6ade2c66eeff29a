"""The log writer's lifecycle edges: its close, and segments that begin with open calls.

Close: once every row is written its tasks end by themselves.

``close`` sets the writer closed, wakes the database task and then cancels whatever is
still running, waiting up to a second for each task. A cancellation can be lost on
Python 3.11 (``asyncio.wait_for`` returns the inner result when it completed in the same
turn as the cancel), and then that second was spent on every shutdown of an idle
gateway. The database task now ends itself once it is closed and caught up, so none of
close's cancels has anything left to do.

Segments: each new spool segment starts with the stubs of the calls still open; with
thousands of open streams those alone filled a segment, which then rotated on every
spool step. Only what is appended after them counts now.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmrelay.store import database
from llmrelay.store import spool as spool_module
from llmrelay.store.schema import RequestRow
from tests.unit.test_writer_spool import count, row, writer


async def test_an_idle_writer_ends_its_tasks_itself_at_close(tmp_path: Path) -> None:
    """Idle, then busy, then idle again: at close no task needed a cancel, rows are all in."""
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    await database.migrate(engine)
    try:
        w = writer(engine, tmp_path / "spool")
        w.start()
        tasks = list(w._tasks)
        await asyncio.sleep(0.2)  # both tasks parked on their events
        for _ in range(30):
            await w.submit(row())
        await asyncio.sleep(0.3)
        await w.close(timeout=30)
        assert all(task.done() and not task.cancelled() for task in tasks)
        assert await count(engine, RequestRow) == 30
    finally:
        await engine.dispose()


async def test_open_calls_carried_into_a_segment_do_not_fill_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stubs of open calls larger than a segment: later steps do not rotate every time."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 4096)
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    await database.migrate(engine)
    try:
        w = writer(engine, tmp_path / "spool")
        w.start()
        for _ in range(100):  # ~100 x 200 B of stubs: several segments' worth
            w.begin(row())
        for _ in range(40):  # past one segment: a rotation carries the 100 stubs over
            await w.submit(row())
        await asyncio.sleep(0.3)
        assert w._spool is not None
        rotated = w._spool._counter
        assert w._spool.active.carried > spool_module.SEGMENT_BYTES  # the stubs came along
        for _ in range(5):  # a few small spool steps: each used to rotate again
            await w.submit(row())
            await asyncio.sleep(0.05)
        assert w._spool._counter == rotated
        await w.close(timeout=30)
        assert await count(engine, RequestRow) == 45
    finally:
        await engine.dispose()
