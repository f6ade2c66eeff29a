"""The serve path loads neither aiohttp's server nor the mock upstream server.

``import llmrelay.app`` is what ``llmrelay serve`` pays at start-up; the mock upstream
(an aiohttp.web application for tests and demos) has no business in it. The built-in
``mock`` provider builds its answers from :mod:`llmrelay.mock_answers`, which imports no
aiohttp. A fresh interpreter is the only honest place to look: this test process has
long imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = "import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"


def modules_after_import(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def server_modules(loaded: list[str]) -> list[str]:
    return [
        name
        for name in loaded
        if name == "aiohttp.web" or name.startswith(("aiohttp.web_", "llmrelay.mock_upstream"))
    ]


@pytest.mark.parametrize(
    "module",
    [
        "llmrelay.app",
        "llmrelay.cli",
        "llmrelay.providers.mock",
        "llmrelay.mock_answers.anthropic_format",
        "llmrelay.mock_answers.responses_format",
        "llmrelay.mock_answers.bedrock_format",
    ],
)
def test_no_server_modules_on_import(module: str) -> None:
    assert server_modules(modules_after_import(module)) == []


def test_the_probe_sees_the_server_when_it_is_imported() -> None:
    """The check above can fail: importing the mock server shows up in it."""
    loaded = server_modules(modules_after_import("llmrelay.mock_upstream"))
    assert "aiohttp.web" in loaded and "llmrelay.mock_upstream.server" in loaded
