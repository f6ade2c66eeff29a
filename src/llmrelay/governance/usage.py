"""Usage rows, monthly summaries, daily rollups and persisted spend, written with each
log batch.

The batch writer runs :func:`write_usage` inside the transaction that inserts the
batch's ``requests`` rows, so a call's request row, usage row, summary increment and
spend increment land together or not at all. The client never waits for any of it.

Exactly once: summaries and spend are increments, so a batch replayed from the spool
(after a crash, or a commit whose answer was lost) must not add again. The writer
passes this sink only the interactions whose ``requests`` row did not exist yet, in the
transaction that inserts it (a concurrent replay of the same row fails on the primary
key and is retried), so each call is counted once. Values are bounded
(:mod:`llmrelay.store.bounds`) before they are summed, so a summary adds what the usage
row holds.

Increments are upserts (``INSERT ... ON CONFLICT DO UPDATE col = col + excluded.col``)
so several gateway instances can add to the same summary row without losing updates;
rows are touched in sorted order so two concurrent batches cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.budgets import Budget, day_period, month_period
from llmrelay.governance.pricing import nanos_to_usd
from llmrelay.governance.rollup import write_daily
from llmrelay.store.bounds import INT64, clean_int, clean_row
from llmrelay.store.bulk import insert_rows
from llmrelay.store.deadline import within
from llmrelay.store.schema import MonthlyUsageSummary, SpendCounter, UsageRecord, utcnow
from llmrelay.telemetry.interaction import Interaction


def _usage_row(it: Interaction) -> dict[str, Any]:
    u = it.usage
    cost = clean_int(it.cost_nanos or 0, INT64)  # priced from upstream-reported tokens
    return {
        "id": it.id,
        "created_at": it.created_at,
        "api_key_id": it.api_key_id,
        "team_id": it.team_id,
        "route": it.route,
        "model": it.model,
        "provider": it.provider,
        "upstream_model": it.upstream_model,
        "stream": it.stream,
        "status_code": it.status,
        **it.token_columns(),
        "cache_write_tokens": u.cache_write_tokens if u else 0,
        "usage_estimated": it.usage_estimated,
        "cost_nanos": cost,
        "total_cost_usd": nanos_to_usd(cost),
        "cache_hit": it.cache in ("HIT", "SEMANTIC"),
        "cost_saved_nanos": clean_int(it.cost_saved_nanos or 0, INT64),
        "probe": it.probe,
    }


def dialect_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` with ``on_conflict_do_update`` (PostgreSQL and SQLite share the API)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _usd_of(conn: AsyncConnection, nanos: Any) -> Any:
    """``nanos / 1e9`` in SQL, derived from the exact integer (never accumulated)."""
    if conn.dialect.name == "postgresql":
        return sa.cast(nanos, sa.Numeric(30, 9)) / sa.literal(1_000_000_000, sa.Numeric(30, 0))
    return nanos / sa.literal(1e9, sa.Float)


def _saturating_sum(conn: AsyncConnection, stored: Any, added: Any) -> Any:
    """``stored + added`` capped at the 64-bit maximum instead of failing the upsert.

    Each row's values are bounded, but a sum of bounded values is not: without the cap
    one absurd upstream report (10^40 tokens) would make every later increment of that
    key's month overflow, and so refuse every later row of the key.
    """
    if conn.dialect.name == "postgresql":  # bigint + bigint raises on overflow: add as numeric
        total = sa.func.least(sa.cast(stored, sa.Numeric(30, 0)) + added, INT64[1])
        return sa.cast(total, sa.BigInteger)
    return sa.func.min(stored + added, INT64[1])  # SQLite turns an overflow into a float


async def write_usage(conn: AsyncConnection, batch: list[Interaction]) -> None:
    table: sa.Table = UsageRecord.__table__  # type: ignore[assignment]
    rows = [clean_row(table, _usage_row(it)) for it in batch if it.api_key_id is not None]
    if not rows:
        return
    await insert_rows(conn, UsageRecord, rows)
    now = utcnow()

    months: dict[tuple[str, int, int], dict[str, Any]] = {}
    spend: dict[tuple[str, str, str], int] = defaultdict(int)
    for it, row in zip((it for it in batch if it.api_key_id is not None), rows, strict=True):
        key_id = row["api_key_id"]
        created = it.created_at
        m = months.setdefault(
            (key_id, created.year, created.month),
            {
                "api_key_id": key_id,
                "year": created.year,
                "month": created.month,
                "team_id": row["team_id"],
                "total_requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "total_cost_nanos": 0,
            },
        )
        m["team_id"] = row["team_id"]
        m["total_requests"] += 1
        m["prompt_tokens"] += row["prompt_tokens"]
        m["completion_tokens"] += row["completion_tokens"]
        m["total_tokens"] += row["total_tokens"]
        m["total_cost_nanos"] += row["cost_nanos"]
        cost = row["cost_nanos"]
        if cost:
            month, _ = month_period(created)
            day, _ = day_period(created)
            scopes = [("key", key_id)] + ([("team", row["team_id"])] if row["team_id"] else [])
            for scope, scope_id in scopes:
                spend[(scope, scope_id, month)] += cost
                spend[(scope, scope_id, day)] += cost

    summary = MonthlyUsageSummary.__table__
    for key in sorted(months):
        values = {
            k: clean_int(v, INT64) if isinstance(v, int) else v for k, v in months[key].items()
        }
        stmt = dialect_insert(conn.dialect.name, summary).values(
            **values,
            total_cost_usd=nanos_to_usd(values["total_cost_nanos"]),
            updated_at=now,
        )
        added = {
            c: _saturating_sum(conn, summary.c[c], stmt.excluded[c])
            for c in (
                "total_requests",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "total_cost_nanos",
            )
        }
        stmt = stmt.on_conflict_do_update(
            index_elements=["api_key_id", "year", "month"],
            set_={
                **added,
                "team_id": stmt.excluded.team_id,
                "updated_at": now,
                "total_cost_usd": _usd_of(conn, added["total_cost_nanos"]),
            },
        )
        await conn.execute(stmt)

    await write_daily(conn, rows, now, dialect_insert, _saturating_sum)

    counters = SpendCounter.__table__
    for scope, scope_id, period in sorted(spend):
        stmt = dialect_insert(conn.dialect.name, counters).values(
            scope=scope,
            scope_id=scope_id,
            period=period,
            spent_nanos=clean_int(spend[(scope, scope_id, period)], INT64),
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "scope_id", "period"],
            set_={
                "spent_nanos": _saturating_sum(
                    conn, counters.c.spent_nanos, stmt.excluded.spent_nanos
                ),
                "updated_at": now,
            },
        )
        await conn.execute(stmt)


def spend_loader(engine: AsyncEngine, timeout: float = 2.0) -> Any:
    """A :data:`~llmrelay.governance.backend.SpendLoader` reading ``spend_counters``.

    It runs on the request path (a budget's first call in a period), so it has
    ``timeout``; a database that fails or hangs makes that call a 503 rather than
    admitting it against a spend of zero, which could overspend the budget.
    """

    async def read(budget: Budget) -> Any:
        async with engine.connect() as conn:
            return await conn.scalar(
                text(
                    "SELECT spent_nanos FROM spend_counters "
                    "WHERE scope = :scope AND scope_id = :id AND period = :period"
                ),
                {"scope": budget.scope, "id": budget.scope_id, "period": budget.period},
            )

    async def load(budget: Budget) -> int:
        try:
            value = await within(timeout, read(budget))
        except Exception as exc:  # refused, reset, timed out: the database is away
            raise ServiceUnavailable(
                "the gateway cannot read this budget's spend right now (its database is "
                "unavailable); retry shortly",
                code="budget_state_unavailable",
                headers={"retry-after": "1"},
            ) from exc
        return int(value or 0)

    return load
