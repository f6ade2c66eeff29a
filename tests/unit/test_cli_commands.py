"""The management commands run in this process (``llmrelay.cli.main``), on SQLite.

tests/integration runs the same commands as real subprocesses against running
gateways; these check each command's own output and refusals where coverage is
measured, and that no secret is ever printed except the new key on the last line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmrelay.cli import main


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
                "providers": [
                    {
                        "name": "up",
                        "type": "openai_compatible",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key": "sk-cli-provider-secret-0001",
                    }
                ],
            }
        )
    )
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_teams_keys_usage_and_route_configs(
    config: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        "teams",
        "create",
        "--name",
        "research",
        "--rpm",
        "30",
        "--budget",
        "100",
        "--config",
        config,
    )
    assert code == 0, out
    code, out, _ = run(capsys, "teams", "list", "--config", config)
    assert code == 0 and "research" in out
    code, out, _ = run(
        capsys,
        "keys",
        "--config",
        config,
        "create",
        "--name",
        "cli-key",
        "--team",
        "research",
        "--rpm",
        "10",
        "--budget",
        "5",
    )
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-relay-")
    code, out, _ = run(capsys, "keys", "--config", config, "list")
    assert code == 0 and "cli-key" in out and secret not in out
    code, out, _ = run(
        capsys,
        "keys",
        "--config",
        config,
        "create",
        "--name",
        "old-key",
        "--expires-at",
        "2020-01-01T00:00:00Z",
    )
    assert code == 0, out
    code, out, _ = run(capsys, "keys", "--config", config, "list")
    assert next(x for x in out.splitlines() if x.startswith("old-key")).split()[3] == "expired"
    code, _, err = run(
        capsys, "keys", "--config", config, "create", "--name", "bad", "--expires-at", "soon"
    )
    assert code == 1 and "--expires-at" in err
    code, out, _ = run(capsys, "usage", "--config", config)
    assert code == 0
    code, out, _ = run(
        capsys, "usage", "--config", config, "--month", "2026-12", "--key", "cli-key"
    )
    assert code == 0
    code, out, err = run(capsys, "usage", "--config", config, "--month", "December")
    assert code != 0 and "month" in (out + err).lower()
    route = json.dumps({"strategy": "single", "targets": [{"provider": "up", "model": "m"}]})
    code, out, _ = run(capsys, "route-configs", "--config", config, "set", "r1", "--json", route)
    assert code == 0 and "created" in out
    code, out, _ = run(capsys, "route-configs", "--config", config, "list")
    assert "r1" in out
    code, out, _ = run(capsys, "route-configs", "--config", config, "show", "r1")
    assert json.loads(out)["targets"][0]["model"] == "m"
    code, _, err = run(
        capsys, "route-configs", "--config", config, "set", "r2", "--json", '{"targets": []}'
    )
    assert code == 1 and "invalid route config" in err
    code, out, _ = run(capsys, "route-configs", "--config", config, "delete", "r1")
    assert code == 0 and "deleted" in out
    code, _, err = run(capsys, "route-configs", "--config", config, "show", "r1")
    assert code == 1 and "no route config" in err
    code, out, _ = run(capsys, "keys", "--config", config, "revoke", "cli-key")
    assert code == 0
    code, out, err = run(capsys, "keys", "--config", config, "revoke", "nobody")
    assert code != 0
    for text in (out, err):
        assert "sk-cli-provider-secret-0001" not in text


def test_keys_import_is_idempotent_and_refuses_a_bad_file(
    config: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = "sk-real-cli-import-0002"
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps({"virtual_keys": {"vk_cli_user": {"provider": "up", "api_key": real}}})
    )
    code, out, err = run(capsys, "keys", "--config", config, "import", str(path))
    assert code == 0 and "1 created" in out, out + err
    code, out, _ = run(capsys, "keys", "--config", config, "import", str(path))
    assert code == 0 and "1 unchanged" in out
    path.write_text(
        json.dumps({"virtual_keys": {"vk_cli_user": {"provider": "up", "api_key": real + "x"}}})
    )
    code, out, _ = run(capsys, "keys", "--config", config, "import", str(path))
    assert code == 0 and "1 updated" in out
    unknown = {"virtual_keys": {"vk_x_bad": {"provider": "nowhere", "api_key": real}}}
    for bad in ("{not json", json.dumps(unknown)):
        path.write_text(bad)
        code, out, err = run(capsys, "keys", "--config", config, "import", str(path))
        assert code != 0 and "Traceback" not in err
        assert real not in out + err
    code, _, err = run(capsys, "keys", "--config", config, "import", str(tmp_path / "missing"))
    assert code != 0
