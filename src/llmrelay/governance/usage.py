"""Usage rows, monthly summaries, daily rollups and persisted spend, written with each
log batch.

:func:`write_usage` is a sink of the batch writer: it returns the statements of the
batch's usage rows and increments, which run in the transaction that inserts the
batch's ``requests`` rows (on SQLite in the same driver job), so a call's request row,
usage row, summary increment and spend increment land together or not at all. The
client never waits for any of it.

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

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Dialect

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.budgets import Budget, day_period, month_period
from llmrelay.governance.pricing import nanos_to_usd
from llmrelay.governance.rollup import DAILY_COLUMNS, DAILY_SUMS, DailySums
from llmrelay.store.bounds import INT64, clean_int
from llmrelay.store.bulk import Shared, Statement, insert_statements
from llmrelay.store.database import Database
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
_TOTAL, _COST, _HIT, _PROBE, _CREATED = (
    _COL["total_tokens"],
    _COL["cost_nanos"],
    _COL["cache_hit"],
    _COL["probe"],
    _COL["created_at"],
)
_NO_TOKENS = (0, 0, 0, 0, 0)


@functools.lru_cache(maxsize=4096)
def _usd(nanos: int) -> Decimal:
    """``nanos_to_usd``: a batch's calls mostly cost one of a few amounts (Decimal
    arithmetic per row was more than the rest of the usage row)."""
    return nanos_to_usd(nanos)


_LOW, _HIGH = INT64


def _usage_values(it: Interaction) -> tuple[Any, ...]:
    u = it.usage
    cost = it.cost_nanos or 0  # priced from upstream-reported tokens
    if type(cost) is not int or not _LOW <= cost <= _HIGH:
        cost = clean_int(cost, INT64)  # bounded before the dollars are derived from it
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
        _usd(cost),
        it.cache in ("HIT", "SEMANTIC"),
        it.cost_saved_nanos or 0,  # bounded by its column's cleaner
        it.probe,
    )


class _Sums:
    """The batch's usage rows added up per (key, team, day, UTC day, model, provider,
    probe), from each usage row's bounded values as it is bound (one pass over the
    batch, in the same slices); the monthly, daily and spend increments are made from
    these groups, a few per batch, instead of from every row."""

    __slots__ = ("groups", "rows")

    def __init__(self) -> None:
        #: group -> [requests, prompt, completion, total, cost, cache hits, errors,
        #: rows with a cost, index of the group's last row]
        self.groups: dict[tuple[Any, ...], list[int]] = {}
        self.rows = 0

    def add(self, part: Sequence[Interaction], cols: list[Sequence[Any]]) -> None:
        groups = self.groups
        n = self.rows
        for key_id, team_id, created, model, provider, probe, p, c, t, cost, hit, status in zip(
            cols[_KEY],
            cols[_TEAM],
            cols[_CREATED],
            cols[_MODEL],
            cols[_PROVIDER],
            cols[_PROBE],
            cols[_PROMPT],
            cols[_COMPLETION],
            cols[_TOTAL],
            cols[_COST],
            cols[_HIT],
            cols[_STATUS],
            strict=True,
        ):
            # Monthly and daily rows take the timestamp's own fields, spend periods its
            # UTC date (as budgets count them); the same date for UTC timestamps.
            day = created.date()
            utc_day = day if created.tzinfo is UTC else created.astimezone(UTC).date()
            group = (key_id, team_id, day, utc_day, model, provider, probe)
            sums = groups.get(group)
            if sums is None:
                sums = groups[group] = [0, 0, 0, 0, 0, 0, 0, 0, 0]
            sums[0] += 1
            sums[1] += p
            sums[2] += c
            sums[3] += t
            sums[4] += cost
            sums[5] += hit
            sums[6] += status >= 400
            sums[7] += cost != 0
            sums[8] = n
            n += 1
        self.rows = n

    def monthly(self) -> list[tuple[Any, ...]]:
        """(api_key_id, year, month, team_id, requests, prompt, completion, total, cost),
        bounded, in key order; the team is that of the key's last row in the month."""
        months: dict[tuple[Any, int, int], list[Any]] = {}
        for (key_id, team_id, day, _, _, _, _), sums in self.groups.items():
            m = months.get((key_id, day.year, day.month))
            if m is None:
                m = months[(key_id, day.year, day.month)] = [team_id, -1, 0, 0, 0, 0, 0]
            if sums[8] > m[1]:
                m[0], m[1] = team_id, sums[8]
            m[2] += sums[0]
            m[3] += sums[1]
            m[4] += sums[2]
            m[5] += sums[3]
            m[6] += sums[4]
        return [
            (key_id, year, month, m[0], *(clean_int(v, INT64) for v in m[2:]))
            for (key_id, year, month), m in sorted(months.items())
        ]

    def spend(self) -> list[tuple[str, str, str, int]]:
        """(scope, scope_id, period, spent_nanos) of the rows with a cost, in order."""
        spend: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for (key_id, team_id, _, utc_day, _, _, _), sums in self.groups.items():
            if not sums[7]:
                continue
            cost = sums[4]
            at = datetime(utc_day.year, utc_day.month, utc_day.day, tzinfo=UTC)
            month, _ = month_period(at)
            day, _ = day_period(at)
            spend[("key", key_id, month)] += cost
            spend[("key", key_id, day)] += cost
            if team_id:
                spend[("team", team_id, month)] += cost
                spend[("team", team_id, day)] += cost
        return [(*k, clean_int(spend[k], INT64)) for k in sorted(spend)]

    def daily(self) -> DailySums:
        daily = DailySums()
        for (key_id, team_id, day, _, model, provider, probe), sums in self.groups.items():
            daily.add(day, key_id, team_id, model, provider, bool(probe), sums)
        return daily


def dialect_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` with ``on_conflict_do_update`` (PostgreSQL and SQLite share the API)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _usd_of(dialect: Dialect, nanos: Any) -> Any:
    """``nanos / 1e9`` in SQL, derived from the exact integer (never accumulated)."""
    if dialect.name == "postgresql":
        return sa.cast(nanos, sa.Numeric(30, 9)) / sa.cast(
            sa.literal_column("1000000000"), sa.Numeric(30, 0)
        )
    return nanos / sa.literal_column("1000000000.0", sa.Float)


def _saturating_sum(dialect: Dialect, stored: Any, added: Any) -> Any:
    """``stored + added`` capped at the 64-bit maximum instead of failing the upsert.

    Each row's values are bounded, but a sum of bounded values is not: without the cap
    one absurd upstream report (10^40 tokens) would make every later increment of that
    key's month overflow, and so refuse every later row of the key. (The cap is a
    literal of the statement text, so the statement's only parameters are the row's.)
    """
    cap = sa.literal_column(str(INT64[1]), sa.BigInteger)
    if dialect.name == "postgresql":  # bigint + bigint raises on overflow: add as numeric
        total = sa.func.least(sa.cast(stored, sa.Numeric(30, 0)) + added, cap)
        return sa.cast(total, sa.BigInteger)
    return sa.func.min(stored + added, cap)  # SQLite turns an overflow into a float


async def write_usage(
    dialect: Dialect, batch: list[Interaction], shared: Shared | None = None
) -> list[Statement]:
    """The batch's usage rows, summaries and spend, as statements of its transaction."""
    keyed = [it for it in batch if it.api_key_id is not None]
    if not keyed:
        return []
    sums = _Sums()
    statements = await insert_statements(
        dialect, usage_records, USAGE_COLUMNS, keyed, _usage_values, sums.add, shared
    )
    now = utcnow()
    # One executemany per table, of a statement compiled once per dialect: building and
    # compiling an upsert per group was ~1.5 ms of the event loop each
    # (bench/writer_cost.py), more than binding the batch's rows.
    months = sums.monthly()
    if months:
        statements.append(
            _upsert(dialect, "monthly").statement([(*m, nanos_to_usd(m[8]), now) for m in months])
        )
    daily = sums.daily()
    if daily.groups:
        statements.append(_upsert(dialect, "daily").statement(daily.rows(now)))
    spend = sums.spend()
    if spend:
        statements.append(_upsert(dialect, "spend").statement([(*s, now) for s in spend]))
    return statements


#: The columns of each upsert's rows, in the order its rows are given.
_UPSERT_COLUMNS = {
    "monthly": (
        "api_key_id",
        "year",
        "month",
        "team_id",
        "total_requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "total_cost_nanos",
        "total_cost_usd",
        "updated_at",
    ),
    "daily": DAILY_COLUMNS,
    "spend": ("scope", "scope_id", "period", "spent_nanos", "updated_at"),
}


class _Upsert:
    """One upsert compiled to its dialect's SQL text once, run as an executemany of the
    rows' values converted by its parameters' bind processors."""

    __slots__ = ("columns", "order", "processors", "sql")

    def __init__(self, stmt: Any, columns: tuple[str, ...], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        self.sql: str = compiled.string
        self.columns = columns
        names: list[str] = list(compiled.positiontup or []) if dialect.positional else list(columns)
        assert sorted(names) == sorted(columns), (names, columns)  # no other parameters
        index = {c: i for i, c in enumerate(columns)}
        self.order = tuple(index[n] for n in names)
        self.processors = tuple(
            compiled.binds[n].type._cached_bind_processor(dialect) for n in names
        )
        if not dialect.positional:
            self.order = ()

    def statement(self, rows: list[tuple[Any, ...]]) -> Statement:
        processors = self.processors
        if not self.order:  # a named paramstyle: dicts
            return Statement(
                self.sql,
                [
                    {
                        c: v if p is None or v is None else p(v)
                        for c, v, p in zip(self.columns, row, processors, strict=True)
                    }
                    for row in rows
                ],
                many=True,
            )
        params = []
        for row in rows:
            ordered = [row[i] for i in self.order]
            params.append(
                tuple(
                    v if p is None or v is None else p(v)
                    for v, p in zip(ordered, processors, strict=True)
                )
            )
        return Statement(self.sql, params, many=True)


_upserts: dict[tuple[str, str], _Upsert] = {}


def _upsert(dialect: Dialect, what: str) -> _Upsert:
    """The batch's upsert of ``what`` (monthly, daily, spend) for ``dialect``, each
    increment a saturating sum of the stored and the inserted (``excluded``) value."""
    key = (what, dialect.name)
    upsert = _upserts.get(key)
    if upsert is not None:
        return upsert
    if what == "monthly":
        table: Any = monthly_usage_summary
        stmt = dialect_insert(dialect.name, table)
        added = {
            c: _saturating_sum(dialect, table.c[c], stmt.excluded[c])
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
                "total_cost_usd": _usd_of(dialect, added["total_cost_nanos"]),
            },
        )
    elif what == "daily":
        table = usage_daily
        stmt = dialect_insert(dialect.name, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "api_key_id", "team_id", "model", "provider", "probe"],
            set_={
                **{c: _saturating_sum(dialect, table.c[c], stmt.excluded[c]) for c in DAILY_SUMS},
                "updated_at": stmt.excluded.updated_at,
            },
        )
    else:
        table = spend_counters
        stmt = dialect_insert(dialect.name, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "scope_id", "period"],
            set_={
                "spent_nanos": _saturating_sum(
                    dialect, table.c.spent_nanos, stmt.excluded.spent_nanos
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        )
    upsert = _upserts[key] = _Upsert(stmt, _UPSERT_COLUMNS[what], dialect)
    return upsert


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
