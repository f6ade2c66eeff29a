"""Conditional routing: Portkey-style queries over the request's metadata and params.

A condition is ``{"query": {...}, "then": "<target name>"}``; the first whose query
matches picks the target, else the strategy's ``default``. A query maps a field to a
value (equality) or to operators, and may combine queries with ``$and`` / ``$or``::

    {"metadata.user_plan": {"$in": ["paid", "enterprise"]}}
    {"$or": [{"params.model": "gpt-4o"}, {"headers.x-team": {"$regex": "^ml-"}}]}

Fields: ``metadata.<key>`` (the body's ``metadata`` object merged with the
``x-llmrelay-metadata`` / ``x-portkey-metadata`` header), ``params.<key>`` (any request
body field, dotted for nested ones) and ``headers.<name>`` (a request header).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIELD_ROOTS = ("metadata", "params", "headers")
COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex"})
_MISSING = object()


class QueryError(ValueError):
    """An invalid query; ``path`` is relative to the query object."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Test:
    """One field compared with one operator."""

    field: str
    op: str
    value: Any
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """All of ``tests`` and ``all_of`` match, and at least one of each ``any_of`` group."""

    tests: tuple[Test, ...] = ()
    all_of: tuple[Query, ...] = ()
    any_of: tuple[tuple[Query, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    query: Query
    then: str


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What conditions may look at, gathered once per request."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_query(raw: object, path: str = "query") -> Query:
    if not isinstance(raw, Mapping) or not raw:
        raise QueryError(path, "must be a non-empty object")
    tests: list[Test] = []
    all_of: list[Query] = []
    any_of: list[tuple[Query, ...]] = []
    for key, value in raw.items():
        here = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise QueryError(here, "must be a non-empty array of queries")
            parts = tuple(parse_query(v, f"{here}[{i}]") for i, v in enumerate(value))
            if key == "$and":
                all_of.extend(parts)
            else:
                any_of.append(parts)
            continue
        if not isinstance(key, str) or key.split(".", 1)[0] not in FIELD_ROOTS or "." not in key:
            raise QueryError(
                here,
                f"unknown field {key!r}: use metadata.<key>, params.<key> or "
                "headers.<name> (or $and / $or)",
            )
        if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
            for op, operand in value.items():
                tests.append(_test(key, str(op), operand, f"{here}.{op}"))
        else:
            tests.append(_test(key, "$eq", value, here))
    return Query(tuple(tests), tuple(all_of), tuple(any_of))


def _test(name: str, op: str, operand: object, path: str) -> Test:
    if op not in COMPARISONS:
        known = ", ".join(sorted(COMPARISONS))
        raise QueryError(path, f"unknown operator {op!r} (one of: {known})")
    if op in ("$in", "$nin") and not isinstance(operand, list):
        raise QueryError(path, f"{op} needs an array")
    if op in ("$gt", "$gte", "$lt", "$lte") and (
        isinstance(operand, bool) or not isinstance(operand, int | float | str)
    ):
        raise QueryError(path, f"{op} needs a number or a string")
    pattern = None
    if op == "$regex":
        if not isinstance(operand, str):
            raise QueryError(path, "$regex needs a string")
        try:
            pattern = re.compile(operand)
        except re.error as exc:
            raise QueryError(path, f"invalid regular expression: {exc}") from exc
    field_name = name.lower() if name.startswith("headers.") else name
    return Test(field_name, op, operand, pattern)


def lookup(facts: RequestFacts, name: str) -> Any:
    root, _, rest = name.partition(".")
    if root == "headers":
        return facts.headers.get(rest, _MISSING)
    current: Any = facts.metadata if root == "metadata" else facts.params
    for part in rest.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _compare(test: Test, actual: Any) -> bool:
    op, expected = test.op, test.value
    if op == "$ne":
        return actual is _MISSING or actual != expected
    if actual is _MISSING:
        return op == "$nin"
    if op == "$eq":
        return bool(actual == expected)
    if op == "$in":
        return actual in expected
    if op == "$nin":
        return actual not in expected
    if op == "$regex":
        return (
            isinstance(actual, str)
            and test.pattern is not None
            and bool(test.pattern.search(actual))
        )
    both_numbers = isinstance(actual, int | float) and isinstance(expected, int | float)
    if isinstance(actual, bool) or (type(actual) is not type(expected) and not both_numbers):
        return False
    try:
        if op == "$gt":
            return bool(actual > expected)
        if op == "$gte":
            return bool(actual >= expected)
        if op == "$lt":
            return bool(actual < expected)
        return bool(actual <= expected)
    except TypeError:
        return False


def matches(query: Query, facts: RequestFacts) -> bool:
    if not all(_compare(t, lookup(facts, t.field)) for t in query.tests):
        return False
    if not all(matches(q, facts) for q in query.all_of):
        return False
    return all(any(matches(q, facts) for q in group) for group in query.any_of)


def choose(
    conditions: tuple[Condition, ...], default: str | None, facts: RequestFacts
) -> str | None:
    """The name of the target to use: the first matching condition's, else ``default``."""
    for condition in conditions:
        if matches(condition.query, facts):
            return condition.then
    return default
