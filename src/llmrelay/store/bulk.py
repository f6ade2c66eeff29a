"""Bulk inserts for the log writer, without SQLAlchemy's per-row statement machinery.

``conn.execute(insert(table), rows)`` rebuilds parameters row by row through the
compiler; at gateway rates that was a quarter of a core. Here the INSERT text and the
columns' bind processors are worked out once per table, columns and dialect, and each
batch becomes :class:`Statement`\\ s of plain tuples, converted as SQLAlchemy's
processors would convert them, so what lands in the table is identical. Every value
first goes through its column's cleaner (:mod:`llmrelay.store.bounds`), so no row that
reaches a table here can fail for a value's length or text.

Rows are given as tuples in the order of a fixed column list (no dict per row), and are
cleaned and converted **a column at a time**: a part of up to :data:`ROW_PART` rows is
turned into columns (``zip``), and a column whose values are all of the common kind
(short ASCII text, ints in range, finite floats, datetimes) is checked and converted by
calls that run in C over the whole column; only a column with an unusual value is
cleaned value by value. Per value that was ~0.5k instructions of Python calls
(``bench/instructions.py --writer``). Between parts the event loop runs whenever the
writer's slice of it is spent (:mod:`llmrelay.store.loop_share`): binding a 500-row
batch in one step was ~4 ms of the loop (bench/loop_stalls.py).

SQLite gets many rows per INSERT statement (see :func:`_sqlite_chunks`), in a few fixed
sizes, so the sqlite3 module's statement cache keeps them prepared: parsing the INSERT
of every batch anew was half of the driver thread's instructions.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from itertools import chain
from operator import is_not
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.engine import Dialect

from llmrelay.store.bounds import INT32, INT64, TEXT_LIMIT, Cleaner, cleaner
from llmrelay.store.database import Connection
from llmrelay.store.loop_share import LoopShare

T = TypeVar("T")
_Processor = Callable[[Any, Any], Any]
_Column = Sequence[Any]
_PLACEHOLDERS: dict[str, Callable[[int], str]] = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%s",
    "numeric": lambda i: f":{i + 1}",
    "numeric_dollar": lambda i: f"${i + 1}",
}
#: Rows cleaned and bound between looks at the clock (a part is well under 0.2 ms).
ROW_PART = 64
#: The most rows of one INSERT statement on SQLite (fewer if the columns would pass its
#: bound on parameters per statement). Statements of 1, 2, 4, ... up to this many rows
#: (see _sqlite_chunks): at most eight sizes per table, each kept prepared by the
#: sqlite3 module's cache (~2.8 kB per row prepared: ~0.7 MB per table and connection).
SQLITE_ROWS_PER_STATEMENT = 128


class Statement(NamedTuple):
    """One statement of a batch: ``params`` a tuple (one execution) or, with ``many``, a
    list of tuples (``executemany``)."""

    sql: str
    params: Any = ()
    many: bool = False


_NONE = type(None)
_not_none = partial(is_not, None)


def _text_column(limit: int, clean: Cleaner) -> Callable[[_Column], _Column]:
    def column(values: _Column) -> _Column:
        # Text (or None) only, ASCII, no NUL, none too long: the cleaner would return each
        # value unchanged (a str subclass too). All of it runs in C; the lengths are
        # looked at per distinct value (most columns repeat a few values).
        try:
            text = "".join(filter(_not_none, values))
        except TypeError:  # a value that is not text: the cleaner makes it text
            text = "\x00"
        if text.isascii() and "\x00" not in text:
            if len(text) <= limit:
                return values
            distinct = set(values)
            distinct.discard(None)
            if max(map(len, distinct)) <= limit:
                return values
        return [v if v is None else clean(v) for v in values]

    return column


def _int_column(bounds: tuple[int, int], clean: Cleaner) -> Callable[[_Column], _Column]:
    low, high = bounds

    def column(values: _Column) -> _Column:
        kinds = set(map(type, values))
        if kinds == {int} and low <= min(values) and max(values) <= high:
            return values
        if kinds == {int, _NONE}:
            present = list(filter(_not_none, values))
            if low <= min(present) and max(present) <= high:
                return values
        return [v if v is None else clean(v) for v in values]

    return column


def _float_column(clean: Cleaner) -> Callable[[_Column], _Column]:
    def column(values: _Column) -> _Column:
        # A sum of finite floats is finite unless it overflows (then: the slow way).
        if set(map(type, values)) == {float} and math.isfinite(sum(values)):
            return values
        return [v if v is None else clean(v) for v in values]

    return column


def _each(clean: Cleaner) -> Callable[[_Column], _Column]:
    def column(values: _Column) -> _Column:
        return [v if v is None else clean(v) for v in values]

    return column


def _column_cleaner(table: Table, name: str) -> Callable[[_Column], _Column] | None:
    """The whole-column form of the cleaner of ``table.name`` (None: the values need
    none); the same values as the cleaner's, value by value."""
    clean = cleaner(table, name)
    if clean is None:
        return None
    kind = table.c[name].type
    if isinstance(kind, String) and not isinstance(kind, Text) and kind.length:
        return _text_column(kind.length, clean)
    if isinstance(kind, Text | String):
        return _text_column(TEXT_LIMIT, clean)
    if isinstance(kind, Integer):  # BigInteger too
        return _int_column(INT64 if isinstance(kind, BigInteger) else INT32, clean)
    if isinstance(kind, Float):
        return _float_column(clean)
    return _each(clean)


def _json_text(value: Any) -> str:
    """A JSON value as its column's processor writes it (``json_serializer``: orjson)."""
    return orjson.dumps(value).decode()


def _column_processor(table: Table, name: str, dialect: Dialect) -> _Processor | None:
    """How a whole column becomes the driver's values (``column(values, shared)``); C
    functions mapped over it where SQLAlchemy's processor would call Python per value."""
    kind = table.c[name].type
    process = kind._cached_bind_processor(dialect)
    if process is None:
        return None
    fast: Callable[[_Column, Shared], _Column | None] | None = None
    if dialect.name == "sqlite" and isinstance(kind, DateTime):
        fast = _sqlite_datetimes
    elif isinstance(kind, Boolean):
        fast = _booleans if dialect.supports_native_boolean else _int_booleans
    elif isinstance(kind, JSON):
        fast = _json_texts

    def column(values: _Column, shared: Shared) -> _Column:
        if fast is not None:
            done = fast(values, shared)
            if done is not None:
                return done
        if None not in values:  # in C when the processor is (to_float, ...)
            return list(map(process, values))
        return [v if v is None else process(v) for v in values]

    return column


class Shared:
    """What one batch's statements convert once for all their tables: a row's timestamp
    is in its ``requests``, ``responses`` and ``usage_records`` rows."""

    __slots__ = ("seconds", "times")

    def __init__(self) -> None:
        #: id -> (the datetime, its text); the datetime is held so its id stays its own.
        self.times: dict[int, tuple[datetime, str]] = {}
        #: (year, month, day, hour, minute, second) -> "YYYY-MM-DD HH:MM:SS."
        self.seconds: dict[tuple[int, ...], str] = {}


def _sqlite_datetimes(values: _Column, shared: Shared) -> _Column | None:
    """SQLAlchemy's SQLite text of datetimes, ``"%(year)04d-%(month)02d-%(day)02d
    %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d" % {...}`` of the fields
    (~18k instructions a value, as ``isoformat`` is ~13k): each value's once per batch,
    its second's prefix once per second."""
    if set(map(type, values)) != {datetime}:
        return None  # dates, None, subclasses: SQLAlchemy's processor
    times, seconds = shared.times, shared.seconds
    out = []
    for v in values:
        known = times.get(id(v))
        if known is None or known[0] is not v:
            key = (v.year, v.month, v.day, v.hour, v.minute, v.second)
            prefix = seconds.get(key)
            if prefix is None:
                y, mo, d, h, mi, sec = key
                prefix = seconds[key] = f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{sec:02d}."
            known = times[id(v)] = (v, prefix + str(1_000_000 + v.microsecond)[1:])
        out.append(known[1])
    return out


def _int_booleans(values: _Column, shared: Shared) -> _Column | None:
    if set(map(type, values)) != {bool}:
        return None  # None, or not a bool (SQLAlchemy's processor refuses it)
    return list(map(int, values))


def _booleans(values: _Column, shared: Shared) -> _Column | None:
    """A dialect with a boolean type: SQLAlchemy's processor gives a bool back as it is."""
    return values if set(map(type, values)) == {bool} else None


def _json_texts(values: _Column, shared: Shared) -> _Column | None:
    if None in values:
        return None
    return list(map(_json_text, values))


class _Plan:
    __slots__ = ("columns", "head", "multi", "per_statement", "processors", "sql", "tuple_sql")

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        placeholder = _PLACEHOLDERS[dialect.paramstyle]
        preparer = dialect.identifier_preparer
        self.head = "INSERT INTO {} ({}) VALUES ".format(
            preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)
        )
        self.tuple_sql = "({})".format(", ".join(placeholder(i) for i in range(len(columns))))
        self.sql = self.head + self.tuple_sql
        # SQLite: many rows per statement (see _sqlite_chunks); other drivers: executemany.
        self.per_statement = (
            _power_of_two_at_most(
                min(SQLITE_ROWS_PER_STATEMENT, _sqlite_variables() // len(columns))
            )
            if dialect.name == "sqlite" and dialect.paramstyle == "qmark"
            else 0
        )
        self.multi: dict[int, str] = {}
        self.columns: tuple[Callable[[_Column], _Column] | None, ...] = tuple(
            _column_cleaner(table, c) for c in columns
        )
        # Only the columns that have one (timestamps, booleans, JSON, ...): a few per row.
        processors = [_column_processor(table, c, dialect) for c in columns]
        self.processors: tuple[tuple[int, _Processor], ...] = tuple(
            (i, p) for i, p in enumerate(processors) if p is not None
        )

    def sql_for(self, rows: int) -> str:
        """The INSERT of ``rows`` rows in one statement (one of a few sizes: cached)."""
        sql = self.multi.get(rows)
        if sql is None:
            sql = self.multi[rows] = self.head + ", ".join([self.tuple_sql] * rows)
        return sql


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


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


async def insert_statements(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    items: Sequence[T],
    values: Callable[[T], Sequence[Any]],
    seen: Callable[[Sequence[T], list[_Column]], None] | None = None,
    shared: Shared | None = None,
) -> list[Statement]:
    """The INSERT of one row per item, ``values(item)`` in the order of ``columns``.

    ``seen`` gets each part of the items with its rows' cleaned (bounded) values, a
    sequence per column, before they are converted for the driver: for sums that must
    add what the rows hold. ``shared``: conversions of the other statements of the same
    batch, reused.
    """
    if not items:
        return []
    plan = _plan(table, columns, dialect)
    cleaners, processors = plan.columns, plan.processors
    rows: list[tuple[Any, ...]] = []
    if shared is None:
        shared = Shared()
    share = LoopShare()
    for start in range(0, len(items), ROW_PART):
        if start and share.spent():
            await share.pause()  # requests run between slices
        part = items[start : start + ROW_PART]
        cols: list[_Column] = list(zip(*map(values, part), strict=True))
        for i, clean in enumerate(cleaners):
            if clean is not None:
                cols[i] = clean(cols[i])
        if seen is not None:
            seen(part, cols)
        for i, process in processors:
            cols[i] = process(cols[i], shared)
        rows.extend(zip(*cols, strict=True))
    if plan.per_statement:
        return [
            Statement(plan.sql_for(len(chunk)), tuple(chain.from_iterable(chunk)))
            for chunk in _sqlite_chunks(rows, plan.per_statement)
        ]
    return [Statement(plan.sql, rows, many=True)]


def _sqlite_chunks(rows: list[T], largest: int) -> list[list[T]]:
    """``rows`` in parts of power-of-two sizes, largest first (100 rows: 64, 32, 4).

    Many rows per INSERT statement on SQLite, not ``executemany``: the sqlite3 module
    lets go of the GIL around every statement step, and ``executemany`` steps once per
    row; the writer's thread then waits for the GIL again behind the busy event loop, up
    to the interpreter's switch interval (5 ms) per row. Under load that held the log
    writer to a few hundred rows a second while calls came in at thousands
    (``bench/soak.sh`` at c16: a million rows pending at the end of the run). Sizes are
    powers of two so that a few statements per table serve every batch size and stay
    prepared (an INSERT of each batch's own size was parsed anew every time).
    """
    chunks: list[list[T]] = []
    start = 0
    while start < len(rows):
        size = min(largest, _power_of_two_at_most(len(rows) - start))
        chunks.append(rows[start : start + size])
        start += size
    return chunks


async def execute(conn: Connection, statements: Sequence[Statement]) -> None:
    """Run ``statements`` on ``conn`` in order: on SQLite as one job in the driver's
    thread (no round trip per statement), elsewhere one statement at a time."""
    if not statements:
        return
    if conn.in_driver_thread is not None:
        await conn.in_driver_thread(_run_sqlite, statements)
        return
    for st in statements:
        await conn.exec_driver_sql(st.sql, st.params)


async def existing_ids(conn: Connection, table: Table, ids: list[str]) -> set[str]:
    """Which of ``ids`` are in ``table``'s ``id`` column already (exactly once)."""
    if not ids:
        return set()
    if conn.in_driver_thread is not None and conn.dialect.paramstyle == "qmark":
        head = _existing_heads.get(table.name)
        if head is None:
            quoted = conn.dialect.identifier_preparer.format_table(table)
            head = _existing_heads[table.name] = f"SELECT id FROM {quoted} WHERE id IN "
        statements = [
            Statement(head + _qmarks(len(chunk)), tuple(chunk))
            for chunk in _sqlite_chunks(ids, SQLITE_ROWS_PER_STATEMENT)
        ]
        return set(await conn.in_driver_thread(_fetch_ids, statements))
    stmt = _existing_selects.get(table.name)
    if stmt is None:
        stmt = _existing_selects[table.name] = select(table.c.id).where(
            table.c.id.in_(bindparam("ids", expanding=True))
        )
    return set((await conn.execute(stmt, {"ids": ids})).scalars())


_existing_heads: dict[str, str] = {}
_existing_selects: dict[str, Any] = {}
_qmark_lists: dict[int, str] = {}


def _qmarks(n: int) -> str:
    """``(?, ?, ...)`` of ``n`` (one of a few sizes, so the statements stay prepared)."""
    text = _qmark_lists.get(n)
    if text is None:
        text = _qmark_lists[n] = "({})".format(", ".join("?" * n))
    return text


def _fetch_ids(raw: sqlite3.Connection, statements: Sequence[Statement]) -> list[str]:
    """In the driver's thread: the ids the statements find."""
    found: list[str] = []
    for sql, params, _ in statements:
        found.extend(row[0] for row in raw.execute(sql, params))
    return found


def _run_sqlite(raw: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """In the driver's thread: every statement of a batch (its transaction is begun and
    ended by the caller's connection)."""
    for sql, params, many in statements:
        if many:
            raw.executemany(sql, params)
        else:
            raw.execute(sql, params)


async def insert_values(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    items: Sequence[T],
    values: Callable[[T], Sequence[Any]],
) -> None:
    """INSERT one row per item, ``values(item)`` in the order of ``columns``."""
    await execute(conn, await insert_statements(conn.dialect, table, columns, items, values))


async def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table``."""
    if not rows:
        return
    columns = tuple(rows[0])
    await insert_values(conn, table, columns, rows, lambda row: [row[c] for c in columns])
