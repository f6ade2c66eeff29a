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

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.budgets import Budget, day_period, month_period
from llmrelay.governance.pricing import nanos_to_usd
from llmrelay.governance.rollup import DAILY_SUMS, DailySums, write_daily
from llmrelay.store.bounds import INT64, clean_int
from llmrelay.store.bulk import insert_values
from llmrelay.store.database import Connection, Database
from llmrelay.store.deadline import within
from llmrelay.store.ids import utcnow
from llmrelay.store.tables import monthly_usage_summary, spend_counters, usage_daily, usage_records
from llmrelay.telemetry.interaction import Interaction

#: The ``usage_records`` columns, in the order of :func:`_usage_values`.
USAGE_COLUMNS = (
    "id",
    "created_at",
    "api_key_id",
    "team_id",
    "route",
    "model",
    "provider",
    "upstream_model",
    "stream",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "usage_estimated",
    "cost_nanos",
    "total_cost_usd",
    "cache_hit",
    "cost_saved_nanos",
    "probe",
)
_COL = {name: i for i, name in enumerate(USAGE_COLUMNS)}
_KEY, _TEAM, _MODEL, _PROVIDER = (
    _COL["api_key_id"],
    _COL["team_id"],
    _COL["model"],
    _COL["provider"],
)
_STATUS, _PROMPT, _COMPLETION = (
    _COL["status_code"],
    _COL["prompt_tokens"],
    _COL["completion_tokens"],
)
_TOTAL, _COST, _HIT, _PROBE = (
    _COL["total_tokens"],
    _COL["cost_nanos"],
    _COL["cache_hit"],
    _COL["probe"],
)
_NO_TOKENS = (0, 0, 0, 0, 0)


def _usage_values(it: Interaction) -> tuple[Any, ...]:
    u = it.usage
    cost = clean_int(it.cost_nanos or 0, INT64)  # priced from upstream-reported tokens
    return (
        it.id,
        it.created_at,
        it.api_key_id,
        it.team_id,
        it.route,
        it.model,
        it.provider,
        it.upstream_model,
        it.stream,
        it.status,
        *(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                u.cached_tokens,
                u.cache_write_tokens,
            )
            if u
            else _NO_TOKENS
        ),
        it.usage_estimated,
        cost,
        nanos_to_usd(cost),
        it.cache in ("HIT", "SEMANTIC"),
        clean_int(it.cost_saved_nanos or 0, INT64),
        it.probe,
    )


class _Sums:
    """The batch's monthly, daily and spend increments, added up from each usage row's
    bounded values as it is bound (one pass over the batch, in the same slices)."""

    def __init__(self) -> None:
        self.months: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.spend: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.daily = DailySums()

    def add(self, it: Interaction, row: list[Any]) -> None:
        key_id, team_id, cost = row[_KEY], row[_TEAM], row[_COST]
        prompt, completion = row[_PROMPT], row[_COMPLETION]
        created = it.created_at
        m = self.months.get((key_id, created.year, created.month))
        if m is None:
            m = self.months[(key_id, created.year, created.month)] = {
                "api_key_id": key_id,
                "year": created.year,
                "month": created.month,
                "team_id": team_id,
                "total_requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "total_cost_nanos": 0,
            }
        m["team_id"] = team_id
        m["total_requests"] += 1
        m["prompt_tokens"] += prompt
        m["completion_tokens"] += completion
        m["total_tokens"] += row[_TOTAL]
        m["total_cost_nanos"] += cost
        if cost:
            month, _ = month_period(created)
            day, _ = day_period(created)
            spend = self.spend
            spend[("key", key_id, month)] += cost
            spend[("key", key_id, day)] += cost
            if team_id:
                spend[("team", team_id, month)] += cost
                spend[("team", team_id, day)] += cost
        self.daily.add(
            created.date(),
            key_id,
            team_id,
            row[_MODEL],
            row[_PROVIDER],
            bool(row[_PROBE]),
            prompt,
            completion,
            cost,
            bool(row[_HIT]),
            row[_STATUS] >= 400,
        )


def dialect_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` with ``on_conflict_do_update`` (PostgreSQL and SQLite share the API)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _usd_of(conn: Connection, nanos: Any) -> Any:
    """``nanos / 1e9`` in SQL, derived from the exact integer (never accumulated)."""
    if conn.dialect.name == "postgresql":
        return sa.cast(nanos, sa.Numeric(30, 9)) / sa.literal(1_000_000_000, sa.Numeric(30, 0))
    return nanos / sa.literal(1e9, sa.Float)


def _saturating_sum(conn: Connection, stored: Any, added: Any) -> Any:
    """``stored + added`` capped at the 64-bit maximum instead of failing the upsert.

    Each row's values are bounded, but a sum of bounded values is not: without the cap
    one absurd upstream report (10^40 tokens) would make every later increment of that
    key's month overflow, and so refuse every later row of the key.
    """
    if conn.dialect.name == "postgresql":  # bigint + bigint raises on overflow: add as numeric
        total = sa.func.least(sa.cast(stored, sa.Numeric(30, 0)) + added, INT64[1])
        return sa.cast(total, sa.BigInteger)
    return sa.func.min(stored + added, INT64[1])  # SQLite turns an overflow into a float


async def write_usage(conn: Connection, batch: list[Interaction]) -> None:
    keyed = [it for it in batch if it.api_key_id is not None]
    if not keyed:
        return
    sums = _Sums()
    await insert_values(conn, usage_records, USAGE_COLUMNS, keyed, _usage_values, sums.add)
    now = utcnow()
    months, spend = sums.months, sums.spend

    # One executemany per table, of a statement built once per dialect: building and
    # compiling an upsert per group was ~1.5 ms of the event loop each
    # (bench/writer_cost.py), more than binding the batch's rows.
    if months:
        await conn.execute(
            _upsert(conn, "monthly"),
            [
                {
                    **(values := {k: _bounded(v) for k, v in months[key].items()}),
                    "total_cost_usd": nanos_to_usd(values["total_cost_nanos"]),
                    "updated_at": now,
                }
                for key in sorted(months)
            ],
        )
    await write_daily(conn, sums.daily, now, _upsert(conn, "daily"))
    if spend:
        await conn.execute(
            _upsert(conn, "spend"),
            [
                {
                    "scope": scope,
                    "scope_id": scope_id,
                    "period": period,
                    "spent_nanos": clean_int(spend[(scope, scope_id, period)], INT64),
                    "updated_at": now,
                }
                for scope, scope_id, period in sorted(spend)
            ],
        )


def _bounded(value: Any) -> Any:
    return clean_int(value, INT64) if isinstance(value, int) else value


_upserts: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, what: str) -> Any:
    """The batch's upsert of ``what`` (monthly, daily, spend) for ``conn``'s dialect,
    each increment a saturating sum of the stored and the inserted (``excluded``) value."""
    key = (what, conn.dialect.name)
    stmt = _upserts.get(key)
    if stmt is not None:
        return stmt
    if what == "monthly":
        table: Any = monthly_usage_summary
        stmt = dialect_insert(conn.dialect.name, table)
        added = {
            c: _saturating_sum(conn, table.c[c], stmt.excluded[c])
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
                "updated_at": stmt.excluded.updated_at,
                "total_cost_usd": _usd_of(conn, added["total_cost_nanos"]),
            },
        )
    elif what == "daily":
        table = usage_daily
        stmt = dialect_insert(conn.dialect.name, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "api_key_id", "team_id", "model", "provider", "probe"],
            set_={
                **{c: _saturating_sum(conn, table.c[c], stmt.excluded[c]) for c in DAILY_SUMS},
                "updated_at": stmt.excluded.updated_at,
            },
        )
    else:
        table = spend_counters
        stmt = dialect_insert(conn.dialect.name, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "scope_id", "period"],
            set_={
                "spent_nanos": _saturating_sum(
                    conn, table.c.spent_nanos, stmt.excluded.spent_nanos
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        )
    _upserts[key] = stmt
    return stmt


def spend_loader(engine: Database, timeout: float = 2.0) -> Any:
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
