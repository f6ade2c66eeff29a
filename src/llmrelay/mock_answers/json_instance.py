"""A deterministic value that validates against a JSON Schema: the mocks' tool arguments.

Real models answer a tool call, a ``json_schema`` response format or Anthropic's
``output_config`` with an instance of the schema the client sent, and the clients
(LangChain's ``with_structured_output``, instructor, pydantic-ai, the SDKs' ``parse``)
load it into their model: ``{}`` makes them fail. The mocks answer with the plainest
instance that fits, derived from the prompt so answers are stable and readable: strings
are the user's text (cut or padded to length), integers 1 when allowed (else the nearest
bound), numbers 1.5 likewise, booleans true, arrays one item (or ``minItems``), objects
every declared property -- only the required ones once nesting is deep, so recursive
models end.

Covered, as pydantic, zod and OpenAI's strict mode emit them: ``type`` (also a list),
``properties`` / ``required`` / ``additionalProperties`` / ``minProperties``, ``items`` /
``prefixItems`` / ``contains`` / ``minItems`` / ``maxItems`` / ``uniqueItems``, ``enum``,
``const``, ``anyOf`` / ``oneOf`` (the first non-null branch), ``allOf`` (merged), local
``$ref`` into ``$defs`` / ``definitions``, OpenAPI's ``nullable``, ``minimum`` /
``maximum`` / ``exclusive*`` (numbers and draft-4 booleans) / ``multipleOf``,
``minLength`` / ``maxLength``, ``format`` and ``pattern`` (:mod:`.regex_sample`), and
those constraints when the Anthropic SDK moved them into the ``description`` (see
:func:`_with_hints`). Not
covered, so an answer may not validate: ``not``, ``if``/``then``/``else``,
``dependentSchemas``, ``patternProperties``, remote ``$ref``, a ``oneOf`` whose branches
overlap.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .regex_sample import sample_matching

#: Below this nesting only required properties are filled and arrays take ``minItems``.
SHALLOW_DEPTH = 6
#: Past this nesting the schema must be unsatisfiable or endlessly recursive: stop.
MAX_DEPTH = 64

#: One value per string ``format``; the uuid is derived from the text.
_FORMATS: dict[str, str] = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "mock@example.com",
    "idn-email": "mock@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri": "https://example.com/",
    "iri-reference": "https://example.com/",
    "url": "https://example.com/",
    "uri-template": "https://example.com/{id}",
    "json-pointer": "/mock",
    "relative-json-pointer": "0",
    "regex": ".*",
}


#: Keywords the Anthropic SDK's ``transform_schema`` (anthropic/lib/_parse/_transform.py)
#: drops from a structured-output schema and appends to its description instead, as
#: ``{minimum: 18, maximum: 120}``, "so that the model *might* follow them".
_HINTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
)
_HINT_BLOCK = re.compile(r"(?:\A|\n\n)\{(\w+: .*)\}\Z", re.DOTALL)
_HINT_SPLIT = re.compile(r", (?=\w+: )")


def instance(schema: object, text: str = "") -> Any:
    """A value valid against ``schema`` (a JSON Schema document), built from ``text``."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Builder(root, text).value(schema, 0, 0)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas' constraints in one (as ``allOf`` means): ``required`` lists are
    united, shared properties are merged recursively, other keywords of ``extra`` win."""
    out = dict(base)
    for key, value in extra.items():
        if key == "required" and isinstance(value, list):
            out[key] = list(dict.fromkeys([*(out.get(key) or []), *value]))
        elif key == "properties" and isinstance(value, Mapping):
            props = dict(out.get(key) or {})
            for name, sub in value.items():
                mine = props.get(name)
                if isinstance(mine, Mapping) and isinstance(sub, Mapping):
                    sub = merge(mine, sub)
                props[name] = sub
            out[key] = props
        else:
            out[key] = value
    return out


class _Builder:
    """One schema document's walk: ``$ref`` pointers resolve against ``root``."""

    def __init__(self, root: Mapping[str, Any], text: str) -> None:
        self._root = root
        self._text = text

    def value(self, schema: object, depth: int, variant: int) -> Any:
        """``variant`` > 0 asks for a value differing from variant 0 (``uniqueItems``)."""
        if schema is False or depth > MAX_DEPTH:
            return None
        if not isinstance(schema, Mapping):
            return self._string({}, variant)
        schema = _with_hints(self._resolve(schema))
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[variant % len(enum)]
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k != key}
                return self.value(merge(rest, self._branch(branches, depth)), depth, variant)
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth, variant)
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            number = _number(schema, integer=kind == "integer", variant=variant)
            if not _fits(number, schema) and _nullable(schema):
                return None  # no number meets the bounds and multiple; null is allowed
            return number
        if kind == "boolean":
            return variant % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, variant)

    # -- keywords that stand for other schemas ---------------------------------------------

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """``schema`` with its ``$ref`` and ``allOf`` folded in (siblings kept)."""
        for _ in range(MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                break
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = merge(self._pointer(ref), rest)
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, Mapping):
                    merged = merge(merged, self._resolve(part))
            schema = merged
        return schema

    def _pointer(self, ref: str) -> Mapping[str, Any]:
        """The local target of ``ref`` (``#``, ``#/$defs/Name``...); ``{}`` when unknown."""
        if not ref.startswith("#"):
            return {}
        node: Any = self._root
        for token in filter(None, ref[1:].split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return {}
        return node if isinstance(node, Mapping) else {}

    def _branch(self, branches: Sequence[Any], depth: int) -> Mapping[str, Any]:
        """The first non-null branch; the null one when deep (recursion must end)."""
        resolved = [self._resolve(b) if isinstance(b, Mapping) else {} for b in branches]
        nulls = [b for b in resolved if _kind(b) == "null"]
        others = [b for b in resolved if _kind(b) != "null"]
        if depth >= SHALLOW_DEPTH and nulls:
            return nulls[0]
        return (others or nulls)[0]

    # -- containers ------------------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int, variant: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        shallow = depth < SHALLOW_DEPTH
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if shallow or name in required:
                out[name] = self.value(sub, depth + 1, variant)
        for name in required:
            if name not in out:
                out[name] = self.value(extra, depth + 1, variant)
        wanted = schema.get("minProperties")
        if isinstance(wanted, int) and extra is not False:
            while len(out) < wanted:
                out[f"property_{len(out) + 1}"] = self.value(extra, depth + 1, variant)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        low = _int(schema.get("minItems")) or 0
        count = max(low, 1) if depth < SHALLOW_DEPTH else low
        high = _int(schema.get("maxItems"))
        if high is not None:
            count = min(count, high)
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # drafts 4-7 spell a tuple as ``items: [...]``
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        values = [
            self.value(prefix[i] if i < len(prefix) else items, depth + 1, i) for i in range(count)
        ]
        contains = schema.get("contains")
        if isinstance(contains, Mapping) and (high is None or high > 0):
            element = merge(items if isinstance(items, Mapping) else {}, contains)
            values[:1] = [self.value(element, depth + 1, 0)]
        return values

    # -- leaves ----------------------------------------------------------------------------

    def _string(self, schema: Mapping[str, Any], variant: int) -> str:
        text = self._text if variant == 0 else f"{self._text} {variant + 1}".strip()
        fmt = schema.get("format")
        if fmt == "uuid":
            text = str(uuid.uuid5(uuid.NAMESPACE_URL, text))
        elif fmt == "byte":  # OpenAPI: base64 of the bytes
            text = base64.b64encode(text.encode()).decode()
        elif isinstance(fmt, str) and fmt in _FORMATS:
            text = _FORMATS[fmt]
        low = _int(schema.get("minLength")) or 0
        high = _int(schema.get("maxLength"))
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            return sample_matching(pattern, text, low, high)
        if len(text) < low:
            text += "x" * (low - len(text))
        return text if high is None else text[:high]


def _with_hints(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` plus the constraints its description spells as the Anthropic SDK does.

    A real model reads them and complies, and the SDK then validates the answer against
    the full model (``messages.parse``), so the mock must comply too.
    """
    description = schema.get("description")
    found = _HINT_BLOCK.search(description) if isinstance(description, str) else None
    if found is None:
        return schema
    hints: dict[str, Any] = {}
    for item in _HINT_SPLIT.split(found.group(1)):
        key, _, raw = item.partition(": ")
        if key in _HINTED:
            hints[key] = raw if key in ("pattern", "format") else _number_text(raw)
    return {**{k: v for k, v in hints.items() if v is not None}, **schema}


def _number_text(raw: str) -> int | float | None:
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return None


def _kind(schema: Mapping[str, Any]) -> str:
    """The JSON type to build: the declared one (first non-null of a list), else inferred
    from the keywords present; ``"any"`` when nothing constrains it."""
    declared = schema.get("type")
    if isinstance(declared, list):
        named = [str(t).lower() for t in declared]
        return next((t for t in named if t != "null"), "null" if named else "any")
    if isinstance(declared, str):
        return declared.lower()  # Gemini's OpenAPI schemas spell types in capitals
    if any(
        k in schema for k in ("properties", "required", "additionalProperties", "minProperties")
    ):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems", "contains")):
        return "array"
    if any(
        k in schema
        for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    ):
        return "number"
    return "any"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """``(low, low_exclusive, high, high_exclusive)`` in either draft's spelling."""
    low, high = _num(schema.get("minimum")), _num(schema.get("maximum"))
    low_ex = high_ex = False
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    ex_low, ex_high = _num(ex_min), _num(ex_max)
    if ex_min is True:  # draft 4: a flag on ``minimum``
        low_ex = low is not None
    elif ex_low is not None and (low is None or ex_low >= low):
        low, low_ex = ex_low, True
    if ex_max is True:
        high_ex = high is not None
    elif ex_high is not None and (high is None or ex_high <= high):
        high, high_ex = ex_high, True
    return low, low_ex, high, high_ex


def _number(schema: Mapping[str, Any], *, integer: bool, variant: int) -> int | float:
    """1 (1.5 for numbers) plus ``variant``, moved inside the bounds and onto a multiple."""
    low, low_ex, high, high_ex = _bounds(schema)
    step = _num(schema.get("multipleOf"))
    if integer:  # integer bounds, all inclusive
        if low is not None:
            low = math.floor(low) + 1 if low_ex else math.ceil(low)
        if high is not None:
            high = math.ceil(high) - 1 if high_ex else math.floor(high)
        low_ex = high_ex = False
    value: float = (1 if integer else 1.5) + variant
    if low is not None and (value < low or (low_ex and value <= low)):
        value = low if not low_ex else (low + high) / 2 if high is not None else low + 1
    if high is not None and (value > high or (high_ex and value >= high)):
        value = high if not high_ex else (low + high) / 2 if low is not None else high - 1
    if step is not None and step > 0:
        value = _onto_multiple(value, step, low, low_ex, high, high_ex)
    return int(value) if integer else float(value)


def _nullable(schema: Mapping[str, Any]) -> bool:
    named = schema.get("type")
    return schema.get("nullable") is True or (isinstance(named, list) and "null" in named)


def _fits(value: float, schema: Mapping[str, Any]) -> bool:
    """Whether ``value`` meets the schema's bounds and ``multipleOf``."""
    low, low_ex, high, high_ex = _bounds(schema)
    if low is not None and (value <= low if low_ex else value < low):
        return False
    if high is not None and (value >= high if high_ex else value > high):
        return False
    step = _num(schema.get("multipleOf"))
    if step is not None and step > 0:
        return Decimal(repr(value)) % Decimal(repr(step)) == 0
    return True


def _onto_multiple(
    value: float, step: float, low: float | None, low_ex: bool, high: float | None, high_ex: bool
) -> float:
    """The multiple of ``step`` nearest above ``value`` that stays within the bounds.

    Computed in decimal so ``3 * 0.1`` is 0.3, not 0.30000000000000004.
    """
    exact = Decimal(repr(step))
    k = math.ceil(Decimal(repr(value)) / exact)
    candidates = [k, k + 1, k - 1]
    if high is not None:
        candidates.append(math.floor(Decimal(repr(high)) / exact))
    for candidate in candidates:
        result = float(exact * candidate)
        above = low is None or (result > low if low_ex else result >= low)
        below = high is None or (result < high if high_ex else result <= high)
        if above and below:
            return result
    return float(exact * k)
