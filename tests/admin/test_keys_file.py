"""Seed 002's keys.json through a real ``llmrelay serve`` process: imported at start
(``keys_file``, or ``KEYS_FILE_PATH``), idempotently, by ``llmrelay keys import`` too;
its keys route with their own real keys; a bad file is a clear start error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

MASTER = "sk-master-keys-file-7788"
REAL_1 = "sk-your-real-openai-key-here-0001"
REAL_2 = "another-openai-key-here-0002"


def keys_json(path: Path, real_1: str = REAL_1) -> Path:
    """Seed 002's file, as its README writes it (virtual keys in their owners' shapes)."""
    data = {
        "virtual_keys": {
            "vk_user1_openai": {"provider": "up", "api_key": real_1},
            "vk_admin_openai": {"provider": "up", "api_key": REAL_2},
        }
    }
    path.write_text(json.dumps(data))
    return path


def config(upstream: MockUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "master_key": MASTER,
        "auto_providers": False,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "shared-provider-key-0000",
            },
        ],
        "models": [{"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"}],
        **extra,
    }


def chat(gw: GatewayProcess, key: str) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_keys_file_imported_at_start_and_by_the_cli(mock: MockUpstream, workdir: Path) -> None:
    path = keys_json(workdir / "keys.json")
    gw = GatewayProcess(workdir / "gw", config(mock, keys_file=str(path))).start()
    try:
        chat(gw, "vk_user1_openai")
        assert mock.requests[-1].headers["authorization"] == f"Bearer {REAL_1}"
        chat(gw, "vk_admin_openai")
        assert mock.requests[-1].headers["authorization"] == f"Bearer {REAL_2}"
        # The admin API of the same process lists them, without secrets.
        # The first admin request builds the FastAPI app (about a second idle, several
        # on a loaded test host): a generous timeout, as for any cold admin call.
        listed = httpx.get(
            gw.url + "/admin/virtual-keys",
            headers={"authorization": f"Bearer {MASTER}"},
            timeout=30,
        )
        assert listed.status_code == 200 and listed.json()["total"] == 2
        for secret in ("vk_user1_openai", "vk_admin_openai", REAL_1, REAL_2):
            assert secret not in listed.text
        # A key made through the admin API works with the official SDK.
        made = httpx.post(
            gw.url + "/admin/virtual-keys",
            json={"name": "via-http", "rate_limit": 10},
            headers={"authorization": f"Bearer {MASTER}"},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        chat(gw, made.json()["virtual_key"])
        assert mock.requests[-1].headers["authorization"] == "Bearer shared-provider-key-0000"
    finally:
        gw.stop()
    # Importing again changes nothing; a changed real key updates the binding in place.
    again = gw.cli("keys", "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 updated, 2 unchanged" in again.stdout
    keys_json(path, real_1="sk-rotated-real-key-0003")
    changed = gw.cli("keys", "import", str(path))
    assert "0 created, 1 updated, 1 unchanged" in changed.stdout, changed.stdout
    assert gw.db_query("SELECT count(*) FROM api_keys") == [(3,)]
    gw.start()
    try:
        chat(gw, "vk_user1_openai")
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-rotated-real-key-0003"
    finally:
        gw.stop()
    assert gw.db_query("SELECT count(*) FROM api_keys") == [(3,)]
    everything = gw.logs() + again.stdout + changed.stdout + changed.stderr
    for secret in (REAL_1, REAL_2, "sk-rotated-real-key-0003"):
        assert secret not in everything
        assert secret not in repr(gw.db_query("SELECT * FROM api_keys"))


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"provider": "nowhere", "api_key": "sk-real-secret-bad-1"}, "provider 'nowhere'"),
        ({"provider": "up", "api_key": "sk-real-secret-bad-1", "extra": 1}, "unknown field"),
        ({"provider": "up"}, "api_key must be"),
    ],
)
def test_a_bad_keys_file_is_a_clear_start_error(
    mock: MockUpstream, workdir: Path, entry: dict[str, Any], complaint: str
) -> None:
    path = workdir / "keys.json"
    good = {"provider": "up", "api_key": "sk-good-real-secret-00"}
    path.write_text(json.dumps({"virtual_keys": {"vk_good_one": good, "vk_bad_two": entry}}))
    gw = GatewayProcess(workdir / "gw", config(mock), env={"KEYS_FILE_PATH": str(path)})
    with pytest.raises(RuntimeError) as caught:
        gw.start(timeout=30)
    gw.stop()
    logs = str(caught.value)
    assert "virtual_keys entry 2" in logs and complaint in logs, logs
    assert "Traceback" not in logs
    assert "sk-real-secret-bad-1" not in logs and "sk-good-real-secret-00" not in logs
    cli = gw.cli("keys", "import", str(path))
    assert cli.returncode == 1 and "virtual_keys entry 2" in cli.stderr
    assert gw.db_query("SELECT count(*) FROM api_keys") == [(0,)]  # nothing half-imported
