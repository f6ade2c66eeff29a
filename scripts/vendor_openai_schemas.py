"""Vendor the part of OpenAI's OpenAPI description that llmrelay's answers must match.

    python scripts/vendor_openai_schemas.py [../shared/specs/openai/openapi.yaml]

Writes ``tests/spec/openai/schemas.json``: the named response components and every
component they reference, transitively, as JSON Schema ``$defs`` (OpenAPI 3.1 schemas
are JSON Schema 2020-12, so only the ``$ref`` paths change:
``#/components/schemas/X`` → ``#/$defs/X``, and the OpenAPI 3.0 leftovers are said
in JSON Schema: see :func:`_rewrite`), and copies the spec's LICENSE (MIT)
beside it. CI validates against the vendored file, so it does not need the 3 MB spec
or ``../shared``. Run it again when the spec is updated; the diff shows what moved.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "specs" / "openai" / "openapi.yaml"
OUT = ROOT / "tests" / "spec" / "openai"

#: What llmrelay sends: answers, stream chunks and events, lists, error bodies.
ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateEmbeddingResponse",
    "ListModelsResponse",
    "Model",
    "Response",
    "ResponseStreamEvent",
    "ErrorResponse",
)
_PREFIX = "#/components/schemas/"
#: Keywords whose value maps names (not keywords) to schemas.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_PREFIX):
            found.add(ref.removeprefix(_PREFIX))
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _rewrite(node: Any, home: str, names: bool = False) -> Any:
    """``$ref`` paths for ``$defs``; OpenAPI's own annotations (``x-*``) dropped.

    ``home`` is the component being rewritten: the spec's two recursive filters use
    draft 2019-09's ``$recursiveAnchor`` / ``$recursiveRef: "#"``, which 2020-12 does
    not have; they become a plain ``$ref`` to the component itself. ``names``: the keys
    of ``node`` are property names, not keywords (kept as they are).
    """
    if isinstance(node, dict):
        if not names and node.get("nullable") is True:
            # OpenAPI 3.0's ``nullable``, still used throughout this 3.1 document, means
            # "or null"; JSON Schema ignores the keyword, so say it in JSON Schema.
            rest = {k: v for k, v in node.items() if k != "nullable"}
            return {"anyOf": [_rewrite(rest, home), {"type": "null"}]}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not names and (key == "$recursiveAnchor" or (
                    isinstance(key, str) and key.startswith("x-"))):
                continue
            if not names and key == "$recursiveRef" and value == "#":
                out["$ref"] = "#/$defs/" + home
            elif not names and key == "$ref" and isinstance(value, str):
                out[key] = "#/$defs/" + value.removeprefix(_PREFIX)
            else:
                out[key] = _rewrite(value, home, names=not names and key in _NAME_MAPS)
        return out
    if isinstance(node, list):
        return [_rewrite(v, home) for v in node]
    return node


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    """The roots and every component they reach."""
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise SystemExit(f"component {name} is not in the spec")
        seen.add(name)
        todo.extend(_refs(schemas[name]) - seen)
    return {name: _rewrite(schemas[name], name) for name in sorted(seen)}


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    spec = yaml.load(spec_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    defs = closure(spec["components"]["schemas"], ROOTS)
    OUT.mkdir(parents=True, exist_ok=True)
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Extracted from OpenAI's OpenAPI description {spec['info']['version']} "
                    "by scripts/vendor_openai_schemas.py; MIT, see LICENSE.",
        "x-openapi-version": spec["info"]["version"],
        "x-roots": list(ROOTS),
        "$defs": defs,
    }
    (OUT / "schemas.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(spec_path.parent / "LICENSE", OUT / "LICENSE")
    print(f"{len(defs)} components from {len(ROOTS)} roots -> {OUT / 'schemas.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
