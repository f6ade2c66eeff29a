"""docs/admin.md's ``sh`` blocks, run in order with curl against a real ``llmrelay serve``
process: the examples of the admin documentation work as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.services import in_ci

DOC = Path(__file__).parents[2] / "docs" / "admin.md"
MASTER = "sk-master-docs-example-3141"


def blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_admin_docs_examples_run(mock: MockUpstream, tmp_path: Path) -> None:
    if not (shutil.which("curl") and shutil.which("jq")):
        if in_ci():  # the docs' examples are a claim CI must check, never skip
            pytest.fail("curl and jq are needed (CI=true: refusing to skip)", pytrace=False)
        pytest.skip("needs curl and jq (Debian: apt-get install curl jq)")
    config = {
        "master_key": MASTER,
        "auto_providers": False,
        "providers": [
            {
                "name": "openai",
                "type": "openai_compatible",
                "base_url": mock.base_url,
                "api_key": "configured-openai-key-0000",
            },
        ],
    }
    gw = GatewayProcess(tmp_path / "gw", config).start()
    try:
        script = "set -euo pipefail\n" + "\n".join(blocks())
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "GW": gw.url, "MASTER": MASTER},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        # The chat call used the key's own real key, after its swap.
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-new-key-xxxxx"
    finally:
        gw.stop()
    created = json.loads((tmp_path / "created.json").read_text())
    assert created["virtual_key"].startswith("vk-") and created["has_real_api_key"] is True
    assert out.count(created["id"]) >= 1  # the idempotent retry answered the same id
    for expected in (
        '"Production Key"',
        "chat.completion",
        "team_has_keys",
        "update,rotate_secret,rotate_real_key,update,create",
    ):
        assert expected in out, out
    assert "sk-xxxxx" not in out and "sk-new-key" not in out
    assert "sk-xxxxx" not in gw.logs() and "sk-new-key-xxxxx" not in gw.logs()
