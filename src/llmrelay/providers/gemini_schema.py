"""JSON Schema (what OpenAI clients send) -> Gemini's ``Schema`` (an OpenAPI 3 subset).

Gemini rejects schema keywords outside its subset (``additionalProperties``,
``$schema``, ``$ref``, ``strict``, ...) with a 400 "Invalid JSON payload received.
Unknown name ...". Tools built with pydantic or zod are full of them, so the
translation keeps the keywords Gemini documents for ``Schema``, inlines local
``$ref``s, folds ``type: [X, "null"]`` into ``nullable`` and drops the rest.
"""

from __future__ import annotations

from typing import Any

from llmrelay.errors import InvalidRequest

#: Keywords of Gemini's ``Schema`` object (ai.google.dev/api/caching#Schema).
_SCALAR_KEYS = frozenset(
    {
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "propertyOrdering",
        "default",
        "minimum",
        "maximum",
    }
)
_MAX_DEPTH = 32


def to_gemini_schema(schema: Any, param: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON Schema object", param=param)
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _convert(schema, defs, param, 0)


def _resolve(ref: str, defs: dict[str, Any], param: str) -> Any:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix) and ref[len(prefix) :] in defs:
            target = defs[ref[len(prefix) :]]
            if not isinstance(target, dict):
                raise InvalidRequest(f"{param}: $ref {ref!r} is not a schema object", param=param)
            return target
    raise InvalidRequest(
        f"{param}: cannot resolve $ref {ref!r} (only local $defs are supported for this provider)",
        param=param,
    )


def _convert(node: Any, defs: dict[str, Any], param: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise InvalidRequest(
            f"{param}: schema nests too deep (recursive $ref is not supported by this provider)",
            param=param,
        )
    if not isinstance(node, dict):
        return {}
    if isinstance(node.get("$ref"), str):
        merged = dict(_resolve(node["$ref"], defs, param))
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return _convert(merged, defs, param, depth + 1)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        merged = dict(all_of[0]) if isinstance(all_of[0], dict) else {}
        merged.update({k: v for k, v in node.items() if k != "allOf"})
        return _convert(merged, defs, param, depth + 1)
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _SCALAR_KEYS}
    if "const" in node and "enum" not in out:
        out["enum"] = [node["const"]]
    kind = node.get("type")
    if isinstance(kind, list):
        others = [t for t in kind if t != "null"]
        if len(others) < len(kind):
            out["nullable"] = True
        kind = others[0] if len(others) == 1 else None
        if len(others) > 1:
            out["anyOf"] = [{"type": str(t).upper()} for t in others]
    if isinstance(kind, str):
        if kind == "null":
            out["nullable"] = True
        else:
            out["type"] = kind.upper()
    if "enum" in out:
        if not isinstance(out["enum"], list):
            raise InvalidRequest(f"{param}: enum must be an array", param=param)
        out["enum"] = [str(v) for v in out["enum"] if v is not None]
        out.setdefault("type", "STRING")
    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {
            name: _convert(sub, defs, param, depth + 1) for name, sub in props.items()
        }
        out.setdefault("type", "OBJECT")
    if isinstance(node.get("items"), dict):
        out["items"] = _convert(node["items"], defs, param, depth + 1)
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        converted = []
        for sub in variants:
            if isinstance(sub, dict) and sub.get("type") == "null":
                out["nullable"] = True
            else:
                converted.append(_convert(sub, defs, param, depth + 1))
        if len(converted) == 1 and "type" not in out:
            out.update(converted[0])
        elif converted:
            out["anyOf"] = converted
    return out
