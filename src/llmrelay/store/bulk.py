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

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from llmrelay.store.bounds import Cleaner, cleaner
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


class _Plan:
    __slots__ = ("cleaners", "processors", "sql")

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        placeholder = _PLACEHOLDERS[dialect.paramstyle]
        preparer = dialect.identifier_preparer
        self.sql = "INSERT INTO {} ({}) VALUES ({})".format(
            preparer.format_table(table),
            ", ".join(preparer.quote(c) for c in columns),
            ", ".join(placeholder(i) for i in range(len(columns))),
        )
        self.cleaners: tuple[Cleaner | None, ...] = tuple(cleaner(table, c) for c in columns)
        # Only the columns that have one (timestamps, booleans, JSON, ...): a few per row.
        processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
        self.processors: tuple[tuple[int, _Processor], ...] = tuple(
            (i, p) for i, p in enumerate(processors) if p is not None
        )


_plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


def _plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Plan:
    key = (table.name, dialect.name, columns)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(table, columns, dialect)
    return plan


async def insert_values(
    conn: AsyncConnection,
    model: type[Any],
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
    plan = _plan(model.__table__, columns, conn.dialect)
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
    await conn.exec_driver_sql(plan.sql, params)


async def insert_rows(
    conn: AsyncConnection, model: type[Any], rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``model``'s table, one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    await insert_values(conn, model, columns, rows, lambda row: [row[c] for c in columns])
