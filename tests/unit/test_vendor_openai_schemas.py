"""scripts/vendor_openai_schemas.py: what it does to the spec's schemas, and its output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_openai_schemas", ROOT / "scripts" / "vendor_openai_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closure_rewrites_refs_nullable_recursion_and_annotations() -> None:
    vendor = _script()
    schemas = {
        "Root": {
            "type": "object",
            "x-oaiMeta": {"name": "Root"},
            "properties": {
                "child": {"$ref": "#/components/schemas/Child"},
                "x-literal": {"type": "string"},
            },
        },
        "Child": {"type": "string", "nullable": True},
        "Tree": {
            "$recursiveAnchor": True,
            "type": "object",
            "properties": {"kids": {"type": "array", "items": {"$recursiveRef": "#"}}},
        },
        "Unused": {"type": "integer"},
    }
    defs = vendor.closure(schemas, ("Root", "Tree"))
    assert set(defs) == {"Root", "Child", "Tree"}
    assert "x-oaiMeta" not in defs["Root"]
    assert "x-literal" in defs["Root"]["properties"]  # a property name, not an annotation
    assert defs["Root"]["properties"]["child"] == {"$ref": "#/$defs/Child"}
    assert defs["Child"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert defs["Tree"]["properties"]["kids"]["items"] == {"$ref": "#/$defs/Tree"}
    assert "$recursiveAnchor" not in defs["Tree"]


def test_vendored_file_is_a_valid_2020_12_schema_with_every_root() -> None:
    document = json.loads((ROOT / "tests" / "spec" / "openai" / "schemas.json").read_text())
    Draft202012Validator.check_schema(document)
    assert set(_script().ROOTS) <= set(document["$defs"])
    assert (ROOT / "tests" / "spec" / "openai" / "LICENSE").read_text().startswith("The MIT")
