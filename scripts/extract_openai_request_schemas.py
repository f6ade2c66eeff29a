#!/usr/bin/env python3
"""Regenerate tests/fuzz/schemas/openai_requests.json from OpenAI's OpenAPI description.

The HTTP fuzz (tests/fuzz/test_http_surface.py) draws schema-valid request bodies for
chat completions, embeddings and responses from these schemas. Only the request
schemas and what they reference are kept (a few hundred kB instead of 3 MB), with
references rewritten to ``#/$defs/...`` and documentation keys dropped, so the tests
need neither the full spec nor a YAML parse at run time. OpenAI publishes the spec
under the MIT license; its LICENSE file is copied next to the subset.

    scripts/extract_openai_request_schemas.py [path/to/openapi.yaml]

The default path is ../shared/specs/openai/openapi.yaml beside the repository.
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
OUT = ROOT / "tests" / "fuzz" / "schemas"
#: endpoint -> the request-body schema of that operation
REQUESTS = {
    "chat": "CreateChatCompletionRequest",
    "embeddings": "CreateEmbeddingRequest",
    "responses": "CreateResponse",
}
_PREFIX = "#/components/schemas/"
#: Keys that only document: dropped to keep the subset small.
_DOC_KEYS = {"description", "title", "example", "examples", "deprecated", "discriminator",
             "markdownDescription"}


def _clean(node: Any, refs: set[str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DOC_KEYS or key.startswith("x-"):
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(_PREFIX):
                name = value[len(_PREFIX):]
                refs.add(name)
                out[key] = "#/$defs/" + name
                continue
            # ``properties`` maps names to schemas: names are data, never doc keys.
            if key == "properties" and isinstance(value, dict):
                out[key] = {k: _clean(v, refs) for k, v in value.items()}
                continue
            out[key] = _clean(value, refs)
        return out
    if isinstance(node, list):
        return [_clean(item, refs) for item in node]
    return node


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    defs: dict[str, Any] = {}
    pending = set(REQUESTS.values())
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        refs: set[str] = set()
        defs[name] = _clean(schemas[name], refs)
        pending |= refs - defs.keys()
    return {
        "source": "OpenAI OpenAPI description (components.schemas), MIT license: see LICENSE",
        "requests": {endpoint: "#/$defs/" + name for endpoint, name in REQUESTS.items()},
        "$defs": dict(sorted(defs.items())),
    }


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as f:
        spec = yaml.load(f, Loader=loader)
    subset = extract(spec)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "openai_requests.json").write_text(json.dumps(subset, indent=1, sort_keys=False)
                                              + "\n")
    shutil.copyfile(path.parent / "LICENSE", OUT / "LICENSE")
    print(f"{len(subset['$defs'])} schemas -> {OUT / 'openai_requests.json'}")


if __name__ == "__main__":
    main()
