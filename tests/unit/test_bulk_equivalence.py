"""The writer's own statements store what SQLAlchemy's would, and its summaries add up.

The log writer builds its INSERTs and upserts without SQLAlchemy's per-row machinery
(column-wise cleaning and conversion, one driver job on SQLite, upserts compiled once to
text). These tests hold it to the reference: the same interactions written by
``insert(table)`` with the value-by-value cleaners give byte-identical rows, and every
summary equals what the old per-row algorithm added up, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, null

from llmrelay.governance.budgets import day_period, month_period
from llmrelay.governance.usage import USAGE_COLUMNS, _usage_values, write_usage
from llmrelay.providers.base import Usage
from llmrelay.store import database, tables
from llmrelay.store.bounds import INT64, clean_int, clean_row, clean_text
from llmrelay.store.bulk import execute, insert_statements
from llmrelay.store.rows import REQUEST_COLUMNS, RESPONSE_COLUMNS, request_values, response_values
from llmrelay.store.schema import new_id
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.interaction import Interaction

_T0 = datetime(2026, 11, 30, 23, 59, 59, 999_000, tzinfo=UTC)


def _mixed() -> Iterator[Interaction]:
    """Common rows and every unusual kind of value, across keys, teams, days and months."""
    for i in range(150):
        usage = Usage(9 + i, 9, 18 + i) if i % 7 else None
        it = Interaction(
            id=new_id(),
            request_id=f"req-{i}",
            created_at=_T0 + timedelta(milliseconds=i * 7),  # crosses midnight and a month
            route="/v1/chat/completions",
            method="POST",
            status=200 if i % 5 else 502,
            latency_ms=1.5 + i,
            overhead_ms=0.25,
            stream=bool(i % 2),
            model=("gpt-4o-mini", "claude", None)[i % 3],
            provider=("bench", "anthropic")[i % 2],
            upstream_model="gpt-4o-mini-2024-07-18",
            api_key_id=("k" * 32, "j" * 32, None)[i % 3] if i % 11 else "k" * 32,
            key_name="bench",
            client_ip="127.0.0.1",
            user_agent=None if i % 4 else "wrk/4",
            usage=usage,
            finish_reason="stop" if i % 3 else None,
            error_type=None if i % 5 else "upstream_error",
            error_message=None if i % 5 else "bad gateway",
            bytes_out=300 + i,
            attempts=[{"provider": "bench", "status": 200, "latency_ms": 1.0}] if i % 6 else [],
            cost_nanos=(1000 * i if i % 4 else None),
            team_id=("t" * 32 if i % 2 else None),
            usage_estimated=i % 9 == 0,
            cache=("HIT", "MISS", None)[i % 3],
            cost_saved_nanos=500 if i % 3 == 0 else None,
            probe=i % 10 == 0,
        )
        yield it
    hostile = Interaction(
        id=new_id(),
        request_id="r\x00\ud800" + "x" * 500,
        created_at=datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),
        route="/v1/chat/completions",
        method="POST",
        status=200,
        latency_ms=float("inf"),
        overhead_ms=float("nan"),
        model="m\ud800\x00" + "m" * 10_000,
        provider="p" * 500,
        api_key_id="k" * 32,
        usage=Usage(10**40, 1, 10**40),
        cost_nanos=10**40,
        attempts=[{"error": "e\ud800", "n": 10**40}],
        user_agent="ü" * 400,
        bytes_out=-(10**30),
    )
    yield hostile
    naive = Interaction(
        id=new_id(),
        request_id="naive",
        created_at=datetime(2026, 12, 1, 12, 0, 0),
        route="/v1/chat/completions",
        method="POST",
        status=200,
        latency_ms=1,  # an int in a float column
        overhead_ms=0.0,
        api_key_id="j" * 32,
        cost_nanos=7,
    )
    yield naive


@pytest.fixture(params=["sqlite", "postgres"])
async def two_dbs(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[database.Database, database.Database]]:
    if request.param == "postgres":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_db")
        urls = [make(), make()]
    else:
        urls = [f"sqlite+aiosqlite:///{tmp_path / n}" for n in ("a.db", "b.db")]
    dbs = [database.create_engine(u) for u in urls]
    for db in dbs:
        await database.migrate(db)
    yield dbs[0], dbs[1]
    for db in dbs:
        await db.dispose()


async def _raw(db: database.Database, table: str) -> list[tuple[Any, ...]]:
    """Every row as the driver returns it (SQLite: the stored text of timestamps)."""
    async with db.connect() as conn:
        result = await conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2, 3")
        return [tuple(r) for r in result]


_TABLES: list[tuple[Any, tuple[str, ...], Callable[[Interaction], Any]]] = [
    (tables.requests, REQUEST_COLUMNS, partial(request_values, bodies=False)),
    (tables.responses, RESPONSE_COLUMNS, partial(response_values, bodies=False)),
    (tables.usage_records, USAGE_COLUMNS, _usage_values),
]


async def test_rows_are_those_sqlalchemy_would_write(
    two_dbs: tuple[database.Database, database.Database],
) -> None:
    ours, reference = two_dbs
    rows = list(_mixed())
    async with ours.begin() as conn:
        for table, columns, values in _TABLES:
            await execute(conn, await insert_statements(conn.dialect, table, columns, rows, values))
    async with reference.begin() as conn:
        for table, columns, values in _TABLES:
            for it in rows:  # a null JSON value is SQL NULL, as the writer always stored it
                row = clean_row(table, dict(zip(columns, values(it), strict=True)))
                await conn.execute(
                    insert(table).values({k: null() if v is None else v for k, v in row.items()})
                )
    for table, _, _ in _TABLES:
        mine, theirs = await _raw(ours, table.name), await _raw(reference, table.name)
        assert len(mine) == len(rows)
        assert mine == theirs, table.name


def _reference_sums(rows: list[Interaction]) -> dict[str, dict[tuple[Any, ...], list[Any]]]:
    """The per-row sums of the writer before it grouped rows (bounded values summed)."""
    monthly: dict[tuple[Any, ...], list[Any]] = {}
    daily: dict[tuple[Any, ...], list[int]] = {}
    spend: defaultdict[tuple[Any, ...], int] = defaultdict(int)
    for it in rows:
        if it.api_key_id is None:
            continue
        row = clean_row(
            tables.usage_records, dict(zip(USAGE_COLUMNS, _usage_values(it), strict=True))
        )
        created, key, team, cost = (
            it.created_at,
            row["api_key_id"],
            row["team_id"],
            row["cost_nanos"],
        )
        m = monthly.setdefault((key, created.year, created.month), [None, 0, 0, 0, 0, 0])
        m[0] = team
        for i, c in enumerate(
            ("prompt_tokens", "completion_tokens", "total_tokens", "cost_nanos"), start=2
        ):
            m[i] += row[c]
        m[1] += 1
        if cost:
            month, day = month_period(created)[0], day_period(created)[0]
            spend[("key", key, month)] += cost
            spend[("key", key, day)] += cost
            if team:
                spend[("team", team, month)] += cost
                spend[("team", team, day)] += cost
        d = daily.setdefault(
            (
                created.date(),
                clean_text(key or "", 36),
                clean_text(team or "", 36),
                clean_text(row["model"] or "", 300),
                clean_text(row["provider"] or "", 200),
                bool(row["probe"]),
            ),
            [0] * 6,
        )
        for i, v in enumerate(
            (
                1,
                row["prompt_tokens"],
                row["completion_tokens"],
                cost,
                bool(row["cache_hit"]),
                row["status_code"] >= 400,
            )
        ):
            d[i] += v
    cap = partial(clean_int, bounds=INT64)
    return {
        "monthly": {k: [v[0], *map(cap, v[1:])] for k, v in monthly.items()},
        "daily": {k: list(map(cap, v)) for k, v in daily.items()},
        "spend": {k: [cap(v)] for k, v in spend.items()},
    }


async def test_summaries_are_the_per_row_sums(
    two_dbs: tuple[database.Database, database.Database], tmp_path: Path
) -> None:
    db, _ = two_dbs
    rows = list(_mixed())
    writer = LogWriter(
        db,
        queue_size=1000,
        batch_size=40,  # several batches: the increments add up across them
        flush_interval=0,
        log_stream=None,
        store_bodies=False,
        spool_dir=tmp_path / "spool",
    )
    writer.sinks.append(write_usage)
    writer.start()
    for it in rows:
        await writer.submit(it)
    await writer.close(timeout=60)
    assert writer.stats.written == len(rows) and writer.stats.dead_lettered == 0
    want = _reference_sums(rows)
    async with db.connect() as conn:
        monthly = {
            (r[0], r[1], r[2]): [r[3], *r[4:9]]
            for r in await conn.exec_driver_sql(
                "SELECT api_key_id, year, month, team_id, total_requests, prompt_tokens, "
                "completion_tokens, total_tokens, total_cost_nanos FROM monthly_usage_summary"
            )
        }
        daily_rows = await conn.exec_driver_sql(
            "SELECT day, api_key_id, team_id, model, provider, probe, requests, "
            "prompt_tokens, completion_tokens, cost_nanos, cache_hits, errors FROM usage_daily"
        )
        daily = {}
        for r in daily_rows:
            day = r[0] if not isinstance(r[0], str) else datetime.fromisoformat(r[0]).date()
            daily[(day, r[1], r[2], r[3], r[4], bool(r[5]))] = list(r[6:])
        spend = {
            (r[0], r[1], r[2]): [r[3]]
            for r in await conn.exec_driver_sql(
                "SELECT scope, scope_id, period, spent_nanos FROM spend_counters"
            )
        }
    assert monthly == want["monthly"]
    assert daily == want["daily"]
    assert spend == want["spend"]
    assert len(daily) > 6 and len(spend) > 6, "the rows spread over groups"


async def test_sqlite_batches_are_one_driver_job_of_a_few_statement_sizes(tmp_path: Path) -> None:
    """The fast path is taken (aiosqlite's thread queue, which an upgrade could change),
    and a batch's INSERTs come in power-of-two sizes that stay prepared."""
    db = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await database.migrate(db)
    try:
        rows = [it for it, _ in zip(_mixed(), range(100), strict=False)]
        async with db.begin() as conn:
            assert conn.in_driver_thread is not None
            statements = await insert_statements(
                conn.dialect, tables.requests, REQUEST_COLUMNS, rows, _TABLES[0][2]
            )
            sizes = [len(st.params) // len(REQUEST_COLUMNS) for st in statements]
            assert sizes == [64, 32, 4]
            await execute(conn, statements)
        async with db.connect() as conn:
            result = await conn.exec_driver_sql("SELECT count(*) FROM requests")
            assert result.scalar() == 100
    finally:
        await db.dispose()
