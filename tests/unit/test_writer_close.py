"""The log writer's close: once every row is written its tasks end by themselves.

``close`` sets the writer closed, wakes the database task and then cancels whatever is
still running, waiting up to a second for each task. A cancellation can be lost on
Python 3.11 (``asyncio.wait_for`` returns the inner result when it completed in the same
turn as the cancel), and then that second was spent on every shutdown of an idle
gateway. The database task now ends itself once it is closed and caught up, so none of
close's cancels has anything left to do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from llmrelay.store import database
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
