"""``llmrelay probe`` as a user runs it: a real CLI subprocess against a real
``llmrelay serve`` in front of mock upstreams whose models work, are refused, missing,
rate limited, crash, stall or break their stream (the mock's ``model_behaviours``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

#: The failures injected, by model name, in each provider's real wire format.
BEHAVIOURS: dict[str, Behaviour] = {
    "missing-*": Behaviour(status=404, error_code="model_not_found"),
    "limited-*": Behaviour(status=429, headers={"retry-after": "0"}),
    "broken-*": Behaviour(drop_after_chunks=1),
    "refused-*": Behaviour(status=401, error_message="Incorrect API key provided: sk-up-SECRET"),
    "crash-*": Behaviour(status=500),
    "slow-*": Behaviour(delay_ms=4000),
}

PROVIDERS: dict[str, list[str]] = {
    "good": ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"],
    "mixed": ["ok-model", "missing-model", "broken-model", "limited-model"],
    "bad": ["refused-model", "crash-model", "slow-model"],
}


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockUpstream]]:
    started = {
        name: MockUpstream(models=models, model_behaviours=BEHAVIOURS).start()
        for name, models in PROVIDERS.items()
    }
    yield started
    for mock in started.values():
        mock.stop()


@pytest.fixture(scope="module")
def gw(
    mocks: dict[str, MockUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config: dict[str, Any] = {
        "mock_provider": False,
        "providers": [
            {"name": name, "type": "openai", "base_url": mock.base_url, "api_key": "sk-up-SECRET"}
            for name, mock in mocks.items()
        ],
        "probe": {"timeout_seconds": 2, "max_models_per_gateway": 4},
        # Lists fetched at start, as a deployed gateway does (the helper turns it off).
        "provider_reload_interval": 300,
    }
    gateway = GatewayProcess(tmp_path_factory.mktemp("probe"), config)
    gateway.start()
    yield gateway
    gateway.stop()


def probe(
    gw: GatewayProcess, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmrelay", "probe", "--config", str(gw.config_path)]
    if key is not None:
        command += ["--url", gw.url, "--key", key]
    return subprocess.run(
        [*command, *args],
        cwd=gw.workdir,
        env=gw.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("prober")


@pytest.fixture(scope="module")
def run(gw: GatewayProcess, key: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = gw.workdir / "report.json"
    result = probe(gw, "--stream", "--json", str(out), key=key)
    return result, json.loads(out.read_text())


def test_exit_code_is_1_when_some_model_fails(run: Any) -> None:
    result, _ = run
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_table_has_the_seed_layout(run: Any) -> None:
    result, _ = run
    text = result.stdout
    assert "Testing Gateway: GOOD" in text and "Testing Gateway: MIXED" in text
    assert "Fetching models from good..." in text
    assert "Testing 2 models" in text  # the embedding model is not asked a chat question
    lines = text.splitlines()
    assert any(line.startswith("[1/2] good/gpt-4o-mini ") and "[OK] (" in line for line in lines)
    summary = lines[lines.index("TEST SUMMARY") :]
    assert "[OK] good            :  2/ 2 passed (100.0%)" in summary
    assert "[WARN] mixed         :  1/ 4 passed ( 25.0%)" in summary
    assert "[FAIL] bad           :  0/ 3 passed (  0.0%)" in summary
    assert "TOTAL: 3/9 models passed (33.3%)" in summary
    assert "sk-up-SECRET" not in text


def _line(text: str, model: str) -> str:
    return next(line for line in text.splitlines() if f"/{model} " in line)


def test_failures_are_classified_as_the_seed_table(run: Any) -> None:
    text = run[0].stdout
    assert "[FAIL]" in _line(text, "missing-model") and "404 model not available" in _line(
        text, "missing-model"
    )
    assert "429 rate limited" in _line(text, "limited-model")
    assert "stream: broken stream" in _line(text, "broken-model")
    assert "401 bad key" in _line(text, "refused-model")
    assert "5xx server error" in _line(text, "crash-model")
    assert "timeout" in _line(text, "slow-model")
    assert "ttft" in _line(text, "gpt-4o-mini")


def test_json_report_has_every_model_and_no_secret(run: Any, key: str) -> None:
    _, report = run
    models = {m["model"].split("/", 1)[1]: m for p in report["providers"] for m in p["models"]}
    assert report["exit_code"] == 1
    assert report["total"] == {**report["total"], "tested": 9, "passed": 3, "failed": 6}
    assert models["missing-model"]["reason"] == "not_found"
    assert models["limited-model"]["reason"] == "rate_limited"
    assert models["broken-model"]["reason"] == "broken_stream"
    assert [t["tier"] for t in models["broken-model"]["tiers"]] == ["listed", "chat", "stream"]
    assert models["refused-model"]["reason"] == "auth"
    assert models["crash-model"]["reason"] == "server_error"
    assert models["slow-model"]["reason"] == "timeout"
    assert models["gpt-4o-mini"]["ok"] and models["gpt-4o-mini"]["ttft_ms"] is not None
    assert models["gpt-4o-mini"]["tokens"] > 0
    raw = json.dumps(report)
    assert key not in raw and "sk-up-SECRET" not in raw


def test_probe_calls_are_tagged_in_usage_rows(run: Any, gw: GatewayProcess) -> None:
    rows = gw.db_query("SELECT probe, count(*) FROM usage_records GROUP BY probe")
    assert dict(rows).get(1, 0) >= 9, rows


def test_history_and_readiness_show_the_run(run: Any, gw: GatewayProcess) -> None:
    result = probe(gw, "history")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "PROVIDER", "RUNS", "OK"]
    good = next(line for line in lines if line.startswith("good/gpt-4o-mini "))
    assert "100.0%" in good
    one = probe(gw, "history", "--model", "bad/slow-model").stdout.splitlines()
    assert len(one) == 2 and "0.0%" in one[1]
    ready = httpx.get(gw.url + "/health/ready").json()
    assert ready["probes"]["good"]["tested"] == 2 and ready["probes"]["good"]["passed"] == 2
    assert ready["probes"]["bad"]["passed"] == 0


def test_one_provider_and_one_model(gw: GatewayProcess, key: str) -> None:
    result = probe(gw, "--provider", "good", "--models", "1", "--no-history", key=key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Testing 1 models" in result.stdout and "TOTAL: 1/1" in result.stdout
    named = probe(gw, "--model", "mixed/missing-model", "--no-history", key=key)
    assert named.returncode == 1 and "404 model not available" in named.stdout


def test_capabilities(gw: GatewayProcess, key: str) -> None:
    out = gw.workdir / "caps.json"
    result = probe(gw, "--provider", "good", "--capabilities", "--json", str(out), key=key)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    models = {m["model"].split("/", 1)[1]: m for m in report["providers"][0]["models"]}
    tiers = [t["tier"] for t in models["gpt-4o-mini"]["tiers"]]
    assert tiers == ["listed", "chat", "tools", "json", "messages", "responses"]
    embedding = models["text-embedding-3-small"]
    assert embedding["kind"] == "embedding" and embedding["tiers"][1]["detail"] == "8 dimensions"


def test_exit_code_2_when_the_probe_cannot_run(gw: GatewayProcess) -> None:
    bad_key = probe(gw, key="sk-not-a-key")
    assert bad_key.returncode == 2 and "the key was refused" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr and "sk-not-a-key" not in bad_key.stderr
    unknown = probe(gw, "--provider", "nope", key="sk-not-a-key")
    assert unknown.returncode == 2
    bad_flag = probe(gw, "--models", "0", key="x")
    assert bad_flag.returncode == 2 and "--models" in bad_flag.stderr
    gone = subprocess.run(
        [sys.executable, "-m", "llmrelay", "probe", "--url", "http://127.0.0.1:9", "--key", "k"],
        capture_output=True,
        text=True,
        timeout=60,
        env=gw.env(),
    )
    assert gone.returncode == 2 and "unreachable" in gone.stderr


def test_local_gateway_without_url(gw: GatewayProcess) -> None:
    """No --url: the probe starts ``llmrelay serve`` on the config with a temporary key."""
    result = probe(gw, "--provider", "good", "--no-history")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TOTAL: 2/2 models passed (100.0%)" in result.stdout
    rows = gw.db_query("SELECT enabled FROM api_keys WHERE name LIKE 'probe-%'")
    assert rows and all(not enabled for (enabled,) in rows)
