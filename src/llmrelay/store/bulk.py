"""Bulk inserts for the log writer, without SQLAlchemy's per-row statement machinery.

``conn.execute(insert(table), rows)`` rebuilds parameters row by row through the
compiler; at gateway rates that was a quarter of a core. Here the INSERT text and the
columns' bind processors are worked out once per table, columns and dialect, and each
batch goes to the driver's ``executemany`` as plain tuples, converted by the same
processors SQLAlchemy would use, so what lands in the table is identical. Every value
first goes through its column's cleaner (:mod:`llmrelay.store.bounds`), so no row that
reaches a table here can fail for a value's length or text.

Rows are given as tuples in the order of a fixed column list (no dict per row), and
bound in parts of :data:`ROW_PART`, with the event loop let run between them whenever
the writer's slice of it is spent (:mod:`llmrelay.store.loop_share`): binding a 500-row
batch was ~4 ms of the loop in one step (bench/loop_stalls.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from llmrelay.store.bounds import Cleaner, cleaner
from llmrelay.store.database import Connection
from llmrelay.store.loop_share import LoopShare

T = TypeVar("T")
_Processor = Callable[[Any], Any]
_PLACEHOLDERS: dict[str, Callable[[int], str]] = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%s",
    "numeric": lambda i: f":{i + 1}",
    "numeric_dollar": lambda i: f"${i + 1}",
}
#: Rows bound between looks at the clock (~3 µs a row: a part is ~0.2 ms).
ROW_PART = 64
#: Rows per INSERT statement on SQLite (fewer if the columns would pass its bound on
#: parameters per statement).
SQLITE_ROWS_PER_STATEMENT = 5000


class _Plan:
    __slots__ = ("cleaners", "head", "multi", "per_statement", "processors", "sql", "tuple_sql")

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        placeholder = _PLACEHOLDERS[dialect.paramstyle]
        preparer = dialect.identifier_preparer
        self.head = "INSERT INTO {} ({}) VALUES ".format(
            preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)
        )
        self.tuple_sql = "({})".format(", ".join(placeholder(i) for i in range(len(columns))))
        self.sql = self.head + self.tuple_sql
        # SQLite: many rows per statement (see _insert_sqlite); other drivers: executemany.
        self.per_statement = (
            max(1, min(SQLITE_ROWS_PER_STATEMENT, _sqlite_variables() // len(columns)))
            if dialect.name == "sqlite" and dialect.paramstyle == "qmark"
            else 0
        )
        self.multi: dict[int, str] = {}
        self.cleaners: tuple[Cleaner | None, ...] = tuple(cleaner(table, c) for c in columns)
        # Only the columns that have one (timestamps, booleans, JSON, ...): a few per row.
        processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
        self.processors: tuple[tuple[int, _Processor], ...] = tuple(
            (i, p) for i, p in enumerate(processors) if p is not None
        )

    def sql_for(self, rows: int) -> str:
        """The INSERT of ``rows`` rows in one statement (cached: a batch has one or two sizes)."""
        sql = self.multi.get(rows)
        if sql is None:
            if len(self.multi) >= 8:
                self.multi.clear()
            sql = self.multi[rows] = self.head + ", ".join([self.tuple_sql] * rows)
        return sql


def _sqlite_variables() -> int:
    """Bound parameters one SQLite statement may hold: the linked library's limit (the
    writer's connections use the same library), else its documented default."""
    try:
        probe = sqlite3.connect(":memory:")
        try:
            return int(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        finally:
            probe.close()
    except (AttributeError, sqlite3.Error):
        return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


_plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


def _plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Plan:
    key = (table.name, dialect.name, columns)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(table, columns, dialect)
    return plan


async def insert_values(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    items: Sequence[T],
    values: Callable[[T], Sequence[Any]],
    seen: Callable[[T, list[Any]], None] | None = None,
) -> None:
    """INSERT one row per item, ``values(item)`` in the order of ``columns``; one
    executemany. ``seen`` gets each item with its row's cleaned (bounded) values before
    they are converted for the driver, for sums that must add what the row holds."""
    if not items:
        return
    plan = _plan(table, columns, conn.dialect)
    cleaners, processors = plan.cleaners, plan.processors
    params: list[tuple[Any, ...]] = []
    share = LoopShare()
    for start in range(0, len(items), ROW_PART):
        if start and share.spent():
            await share.pause()  # requests run between slices
        for item in items[start : start + ROW_PART]:
            row = [
                v if v is None or c is None else c(v)
                for c, v in zip(cleaners, values(item), strict=True)
            ]
            if seen is not None:
                seen(item, row)
            for i, process in processors:
                if row[i] is not None:
                    row[i] = process(row[i])
            params.append(tuple(row))
    if plan.per_statement:
        await _insert_sqlite(conn, plan, params)
    else:
        await conn.exec_driver_sql(plan.sql, params)


async def _insert_sqlite(conn: Connection, plan: _Plan, params: list[tuple[Any, ...]]) -> None:
    """Many rows per INSERT statement on SQLite, not ``executemany``.

    The sqlite3 module lets go of the GIL around every statement step, and ``executemany``
    steps once per row; the writer's thread then waits for the GIL again behind the busy
    event loop, up to the interpreter's switch interval (5 ms) per row. Under load that
    held the log writer to a few hundred rows a second while calls came in at thousands
    (``bench/soak.sh`` at c16: a million rows pending at the end of the run). One
    statement per :data:`SQLITE_ROWS_PER_STATEMENT` rows steps once for all of them.
    """
    step = plan.per_statement
    for start in range(0, len(params), step):
        part = params[start : start + step]
        await conn.exec_driver_sql(plan.sql_for(len(part)), tuple(chain.from_iterable(part)))


async def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table``, one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    await insert_values(conn, table, columns, rows, lambda row: [row[c] for c in columns])
