"""Bulk inserts for the log writer, without SQLAlchemy's per-row statement machinery.

``conn.execute(insert(table), rows)`` rebuilds parameters row by row through the
compiler; at gateway rates that was a quarter of a core. Here the INSERT text and the
columns' bind processors are worked out once per table and dialect, and each batch goes
to the driver's ``executemany`` as plain tuples, converted by the same processors
SQLAlchemy would use, so what lands in the table is identical. Every value first goes
through its column's cleaner (:mod:`llmrelay.store.bounds`), so no row that reaches a
table here can fail for a value's length or text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from llmrelay.store.bounds import Cleaner, cleaner

_Processor = Callable[[Any], Any] | None
_PLACEHOLDERS: dict[str, Callable[[int], str]] = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%s",
    "numeric": lambda i: f":{i + 1}",
    "numeric_dollar": lambda i: f"${i + 1}",
}


class _Plan:
    __slots__ = ("cleaners", "columns", "processors", "sql")

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        placeholder = _PLACEHOLDERS[dialect.paramstyle]
        preparer = dialect.identifier_preparer
        self.columns = tuple(columns)
        self.sql = "INSERT INTO {} ({}) VALUES ({})".format(
            preparer.format_table(table),
            ", ".join(preparer.quote(c) for c in columns),
            ", ".join(placeholder(i) for i in range(len(columns))),
        )
        self.processors: tuple[_Processor, ...] = tuple(
            table.c[c].type._cached_bind_processor(dialect) for c in columns
        )
        self.cleaners: tuple[Cleaner | None, ...] = tuple(cleaner(table, c) for c in columns)


_plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


async def insert_rows(
    conn: AsyncConnection, model: type[Any], rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``model``'s table, one executemany."""
    if not rows:
        return
    table: Table = model.__table__
    columns = tuple(rows[0])
    dialect = conn.dialect
    key = (table.name, dialect.name, columns)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(table, columns, dialect)
    steps = tuple(zip(plan.columns, plan.cleaners, plan.processors, strict=True))
    params = [tuple(_bind(row[c], clean, p) for c, clean, p in steps) for row in rows]
    await conn.exec_driver_sql(plan.sql, params)


def _bind(value: Any, clean: Cleaner | None, process: _Processor) -> Any:
    if value is None:
        return None
    if clean is not None:
        value = clean(value)
    return process(value) if process is not None else value
