"""Hypothesis strategies for hostile request bodies: JSON of every type, and valid bodies
with one or more of their fields replaced, removed or nested deep.

A mutation picks any node of a known-good body (found by walking it, so every field the
seeds exercise is a target, including ones inside content parts and tool schemas) and
puts there a value of another JSON type, a huge or odd string, or a deeply nested
array. That reaches the type checks a schema-valid generator never does.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Part of the fuzz's time budget: CI runs each fuzz test with a fixed number of
#: examples and a fixed seed derivation, so a failure reproduces on the next run.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: ``FUZZ_SCALE=20`` multiplies every example count, for a longer hunt by hand.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int) -> settings:
    """Bounded, deterministic under CI, no deadline (the machine is loaded)."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        derandomize=IN_CI,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


Path = tuple[str | int, ...]

#: Strings that have broken parsers elsewhere: NUL, lone surrogates cannot be sent
#: (orjson rejects them), so these are the legal-but-odd ones.
ODD_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\u202e",
        "\ufeff",
        "😀" * 3,
        "null",
        "true",
        "0",
        "-1",
        "1e309",
        "NaN",
        "{}",
        "[]",
        "data:image/png;base64,",
        "data:;base64,@@@",
        "http://",
        "\n\n",
        "user",
        "assistant",
        "system",
        "tool",
        "function",
        "text",
        "image_url",
        "json_schema",
        "auto",
        "none",
        "required",
        '{"a": [1, {}]}',
    ]
) | st.sampled_from(
    [
        # Built on demand (their repr would fill hypothesis' statistics): a huge string,
        # and JSON nested deep inside a string (tool-call arguments get parsed).
        lambda: "x" * 70_000,
        lambda: "[" * 300 + "]" * 300,
        lambda: '{"a":' * 300 + "1" + "}" * 300,
    ]
).map(lambda make: make())

#: Text without lone surrogates, which no JSON encoder can send as UTF-8.
CHARS = st.characters(exclude_categories=("Cs",))


def text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(CHARS, min_size=min_size, max_size=max_size)


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text(),
    ODD_STRINGS,
)

#: Any JSON value, kept small so many are tried.
json_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "text", "role", "content", "name", "x"]) | text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = None) -> Any:
    """``depth`` arrays (or objects) inside one another."""
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


#: Deep but under the JSON parser's limit (orjson: 1024), and around the bound.
deep_values = st.integers(min_value=60, max_value=900).map(nested)

replacement_values = st.one_of(json_values, json_values, deep_values, ODD_STRINGS)


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every node of a JSON value, the root excluded."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def _apply(body: Any, path: Path, value: Any, delete: bool) -> None:
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if delete:
        del parent[last]  # type: ignore[arg-type]
    else:
        parent[last] = value


@st.composite
def mutated(
    draw: st.DrawFn, seeds: list[dict[str, Any]], extra_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A seed body with one to three nodes replaced (or removed), or a field added."""
    body = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = list(paths(body))
        if extra_keys and draw(st.booleans()) and draw(st.booleans()):
            body[draw(st.sampled_from(extra_keys))] = draw(replacement_values)
            continue
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        delete = draw(st.integers(min_value=0, max_value=5)) == 0
        _apply(body, path, draw(replacement_values), delete)
    return body


#: Route configs a client may send in ``x-llmrelay-config``: the schema's own words,
#: put together in shapes right and wrong.
_leaf = st.fixed_dictionaries(
    {},
    optional={
        "provider": st.sampled_from(["claude", "gemini", "bedrock", "mock", "nope"]) | json_values,
        "model": st.sampled_from(["claude-sonnet-4-5", "echo", "gemini-2.0-flash"]) | json_values,
        "override_params": st.dictionaries(
            st.sampled_from(["model", "temperature", "max_tokens", "messages", "stream"]),
            json_values,
            max_size=2,
        )
        | json_values,
        "weight": json_values,
        "retry": json_values,
        "timeout": json_values,
        "on_errors": json_values,
        "strategy": json_values,
    },
)
#: Condition queries: real field names and operators, any operand.
QUERIES = st.recursive(
    st.dictionaries(
        st.sampled_from(
            [
                "params.model",
                "params.temperature",
                "params.metadata.tier",
                "metadata.tier",
                "headers.x-team",
                "params",
                "nope.x",
            ]
        ),
        json_values
        | st.dictionaries(
            st.sampled_from(
                ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$x"]
            ),
            json_values,
            min_size=1,
            max_size=2,
        ),
        min_size=1,
        max_size=2,
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=2), min_size=1
    ),
    max_leaves=4,
)
ROUTE_CONFIGS = st.recursive(
    _leaf,
    lambda inner: st.fixed_dictionaries(
        {
            "strategy": st.fixed_dictionaries(
                {
                    "mode": st.sampled_from(
                        ["single", "fallback", "loadbalance", "conditional", "x"]
                    )
                    | json_values
                },
                optional={
                    "conditions": st.lists(
                        st.fixed_dictionaries(
                            {"query": QUERIES | json_values, "then": json_values}
                        ),
                        max_size=2,
                    ),
                    "default": json_values,
                },
            ),
            "targets": st.lists(inner, max_size=3) | json_values,
        }
    ),
    max_leaves=4,
)
