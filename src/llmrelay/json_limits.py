"""How deeply nested a client's JSON may be, checked once where it is parsed.

orjson parses up to 1024 levels but serialises only up to 254 (``TypeError: Recursion
limit reached``), and the recursive translators (JSON Schema conversion, content
blocks) would meet Python's recursion limit near 1000 frames. A body between those
limits used to parse fine and then crash whichever adapter re-encoded it: a 500 for
``{"messages": [{"content": [[[[...]]]]}]}``. So nesting is bounded at parse time,
well below both limits, leaving room for the levels a translation adds around the
client's values (Bedrock's ``toolSpec.inputSchema.json`` wraps a tool schema in three).

128 levels is far beyond real requests: OpenAI's strict structured outputs allow 10
levels of schema nesting (about 25 JSON levels inside the body).
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.errors import InvalidRequest

#: The deepest nesting accepted anywhere in a client's JSON (the body is level 1).
MAX_JSON_DEPTH = 128


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def check_depth(
    raw: bytes, value: Any, what: str = "request body", param: str | None = None
) -> None:
    """Refuse ``value`` (parsed from ``raw``) if it nests deeper than the bound.

    Counting brackets in the raw bytes is a C-speed upper bound on the depth, so the
    walk only runs for bodies with more than :data:`MAX_JSON_DEPTH` brackets in all.
    """
    if not isinstance(value, dict | list):
        return
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    if too_deep(value):
        raise InvalidRequest(
            f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep; flatten it",
            param=param,
            code="json_too_deep",
        )


def loads_nested(raw: str | bytes, what: str, param: str | None = None) -> Any:
    """Parse JSON a client embedded in a string (tool-call arguments), with the same bound.

    Raises ``orjson.JSONDecodeError`` for invalid JSON, as ``orjson.loads`` does, so
    callers keep their own lenient handling of it.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    value = orjson.loads(data)
    check_depth(data, value, what, param)
    return value
