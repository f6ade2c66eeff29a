"""What a column may hold: every value is bounded and made storable before it is inserted.

A row carries values a client or an upstream chose (model names, request ids, user
agents, finish reasons, error text, token counts, attempt records). One value the
database refuses fails the whole batch it is in, so values are cleaned where they enter
the row, per column *kind*, from the column's declared type — a new column is covered
without anyone remembering to add a check:

- ``String(n)``: NUL bytes removed (PostgreSQL text cannot hold them), text that is not
  valid UTF-8 (lone surrogates from ``\\ud800`` escapes) replaced, and cut to ``n``
  characters (PostgreSQL counts characters; SQLite ignores the length), ending in ``…``
  when cut so a reader can tell.
- ``Text``: the same, cut to :data:`TEXT_LIMIT` characters.
- ``Integer`` / ``BigInteger``: clamped to the 32- / 64-bit range (an upstream that
  reports 10^12 tokens must not overflow the column).
- ``Float``: non-finite values become 0.
- ``JSON``: serialisable (strings cleaned, keys made strings, nesting cut at
  :data:`JSON_DEPTH`) and at most :data:`JSON_LIMIT` bytes, else a small marker object.

The cleaners return values unchanged in the common case after checks that run in C
(a short ASCII string, an int in range, a finite float): no further call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Column, Float, Integer, String, Table, Text

#: Characters kept of a ``Text`` column (request and response bodies, error messages).
TEXT_LIMIT = 4 * 1024 * 1024
#: Serialised bytes kept of a ``JSON`` column (the attempts list).
JSON_LIMIT = 64 * 1024
#: Nesting kept inside a ``JSON`` column.
JSON_DEPTH = 16

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

Cleaner = Callable[[Any], Any]


def clean_text(value: Any, limit: int) -> str:
    """``value`` as storable text of at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not representable in UTF-8
        text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…" if limit > 1 else text[:limit]
    return text


def clean_int(value: Any, bounds: tuple[int, int]) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, bounds[0]), bounds[1])


def clean_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _plain_json(value: Any, depth: int) -> Any:
    """A JSON-serialisable copy of ``value`` with clean strings and bounded nesting."""
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return clean_int(value, INT64)
        return value
    if isinstance(value, str):
        return clean_text(value, JSON_LIMIT)
    if depth >= JSON_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        return {clean_text(k, 200): _plain_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v, depth + 1) for v in value]
    return clean_text(repr(value), 200)


def clean_json(value: Any) -> Any:
    """``value`` as a JSON column can store it, at most :data:`JSON_LIMIT` bytes encoded."""
    if value is None:
        return None
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        value = _plain_json(value, 0)
        size = len(orjson.dumps(value))
    if size > JSON_LIMIT:
        return {"truncated": True, "bytes": size}
    return value


def _text_cleaner(limit: int) -> Cleaner:
    # The common value (short ASCII text without NUL) is returned after checks that run
    # in C (``isascii`` is a flag of the string): no encode, no call of clean_text.
    def clean(value: Any) -> Any:
        if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
            return value
        return clean_text(value, limit)

    return clean


def _int_cleaner(bounds: tuple[int, int]) -> Cleaner:
    low, high = bounds

    def clean(value: Any) -> Any:
        if type(value) is int and low <= value <= high:
            return value
        return clean_int(value, bounds)

    return clean


def _float_cleaner(value: Any) -> Any:
    if type(value) is float and value - value == 0.0:  # finite (inf - inf and nan are nan)
        return value
    return clean_float(value)


def _cleaner(column: Column[Any]) -> Cleaner | None:
    kind = column.type
    if isinstance(kind, String) and not isinstance(kind, Text) and kind.length:
        return _text_cleaner(kind.length)
    if isinstance(kind, Text | String):
        return _text_cleaner(TEXT_LIMIT)
    if isinstance(kind, BigInteger):
        return _int_cleaner(INT64)
    if isinstance(kind, Integer):
        return _int_cleaner(INT32)
    if isinstance(kind, Float):
        return _float_cleaner
    if isinstance(kind, JSON):
        return clean_json
    return None  # booleans, timestamps, decimals: produced by the gateway itself


_cleaners: dict[tuple[str, str], Cleaner | None] = {}


def cleaner(table: Table, column: str) -> Cleaner | None:
    """The cleaner of ``table.column`` (None when its values need none), cached."""
    key = (table.name, column)
    if key not in _cleaners:
        _cleaners[key] = _cleaner(table.c[column])
    return _cleaners[key]


def clean_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every non-null value cleaned for its column (a new dict)."""
    out = {}
    for name, value in row.items():
        fn = cleaner(table, name)
        out[name] = fn(value) if fn is not None and value is not None else value
    return out
