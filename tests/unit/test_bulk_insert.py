"""Bulk inserts on SQLite: many rows per statement, with memory that does not grow with
the number of batch sizes seen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from llmrelay.store import database, tables
from llmrelay.store.bulk import insert_values
from llmrelay.store.rows import REQUEST_COLUMNS, request_values
from tests.unit.test_writer_spool import row


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[database.Database]:
    eng = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    await database.migrate(eng)
    yield eng
    await eng.dispose()


async def test_batches_of_many_sizes_leave_no_prepared_statements_behind(
    db: database.Database,
) -> None:
    """When each batch size was an INSERT of its own, the sqlite3 module kept up to 128
    of them prepared per connection (~10 MB each at 3,000 rows: 790 MB of RSS after the
    bench's c64 phases; 24 sizes here grew RSS by ~150 MB). Now a batch is INSERTs of a
    few power-of-two sizes up to 128 rows, all the batch sizes share them, and the
    statement cache is on."""
    before = _rss_mb()
    written = 0
    for extra in range(24):
        rows = [row() for _ in range(3000 + extra)]
        async with db.begin() as conn:
            await insert_values(
                conn, tables.requests, REQUEST_COLUMNS, rows, lambda it: request_values(it, False)
            )
        written += len(rows)
    grown = _rss_mb() - before
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(tables.requests)) == written
        assert await conn.scalar(text("SELECT count(DISTINCT id) FROM requests")) == written
    assert grown < 60, f"RSS grew {grown:.0f} MB over 24 batch sizes"
