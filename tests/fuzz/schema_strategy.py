"""Request bodies drawn from the OpenAI request schemas (``schemas/openai_requests.json``).

A small JSON Schema → hypothesis strategy for the keywords those schemas use: ``$ref``,
``type`` (one or a list), ``enum`` / ``const``, ``anyOf`` / ``oneOf`` / ``allOf``,
``properties`` / ``required`` / ``additionalProperties``, ``items`` and the size and
range bounds. hypothesis-jsonschema would do this, but its 0.23.1 release fails on every
object schema with the hypothesis we pin (``'many' object has no attribute 'more'``:
hypothesis changed that internal API), so this keeps the fuzz on public APIs only.

Recursion through ``$ref`` is cut at :data:`MAX_REF_DEPTH` by choosing the first
non-recursive alternative, so the bodies stay small and valid.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.mutations import text

SCHEMAS = Path(__file__).parent / "schemas" / "openai_requests.json"
MAX_REF_DEPTH = 6
_MAX_ITEMS = 3


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SCHEMAS.read_text())
    return spec


def _deref(ref: str) -> Any:
    return _spec()["$defs"][ref.removeprefix("#/$defs/")]


def request_body(endpoint: str) -> st.SearchStrategy[Any]:
    """Schema-shaped bodies for ``chat``, ``embeddings`` or ``responses``."""
    return _strategy({"$ref": _spec()["requests"][endpoint]}, 0)


@cache
def _ref(ref: str, depth: int) -> st.SearchStrategy[Any]:
    """One strategy per (definition, depth): built once, shared by every use."""
    if depth > MAX_REF_DEPTH:
        return st.nothing()
    return _strategy(_deref(ref), depth)


def _merge(parts: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, dict) and "$ref" in part:
            part = _deref(part["$ref"])
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            elif key == "required" and isinstance(out.get(key), list):
                out[key] = [*out[key], *value]
            elif key == "allOf":
                out.update(_merge(value))
            else:
                out[key] = value
    return out


def _strategy(schema: Any, depth: int) -> st.SearchStrategy[Any]:
    if schema is True or schema == {}:
        return st.one_of(st.none(), st.booleans(), st.integers(), text(max_size=10))
    if not isinstance(schema, dict) or schema is False:
        return st.nothing()
    if "$ref" in schema:
        return _ref(schema["$ref"], depth + 1)
    if "allOf" in schema:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return _strategy(_merge([*schema["allOf"], rest]), depth)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        options = [_strategy(_merge([rest, v]) if rest else v, depth) for v in variants]
        return st.one_of(options)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_strategy({**schema, "type": k}, depth) for k in kind])
    if kind == "object" or (kind is None and "properties" in schema):
        return _object(schema, depth)
    if kind == "array":
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", _MAX_ITEMS), _MAX_ITEMS))
        elements = _strategy(items, depth)
        if elements.is_empty:  # only recursion left below: the smallest array, if any
            return st.just([]) if low == 0 else st.nothing()
        return st.lists(elements, min_size=low, max_size=high)
    if kind == "string":
        low = schema.get("minLength", 0)
        high = max(low, min(schema.get("maxLength", 24), 24))
        return text(min_size=low, max_size=high)
    if kind == "integer":
        return st.integers(min_value=_bound(schema, "minimum"), max_value=_bound(schema, "maximum"))
    if kind == "number":
        return st.floats(
            min_value=_bound(schema, "minimum"),
            max_value=_bound(schema, "maximum"),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.one_of(st.none(), st.booleans(), st.integers(), text(max_size=10))


def _bound(schema: dict[str, Any], key: str) -> Any:
    value = schema.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = [name for name in schema.get("required", []) if name in properties]
    fixed = {name: _strategy(properties[name], depth) for name in required}
    optional = {
        name: _strategy(sub, depth) for name, sub in properties.items() if name not in fixed
    }
    extra = schema.get("additionalProperties")
    extras = (
        st.dictionaries(text(min_size=1, max_size=8), _strategy(extra, depth), max_size=2)
        if isinstance(extra, dict) and not properties
        else st.just({})
    )

    optional = {name: value for name, value in optional.items() if not value.is_empty}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(extras)
        out.update(draw(st.fixed_dictionaries(fixed)))
        # How many optional fields: none, a few, or many (most bodies that set many
        # fields meet one some provider cannot honour: a fine 400, but a shallow one).
        odds = draw(st.sampled_from([0, 10, 3]))
        for name in sorted(optional):
            if odds and draw(st.integers(min_value=0, max_value=odds)) == 0:
                out[name] = draw(optional[name])
        return out

    return build()
