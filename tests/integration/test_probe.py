"""``llmrelay probe`` as a user runs it: a real CLI subprocess against a real
``llmrelay serve`` in front of mock upstreams whose models work, are refused, missing,
rate limited, crash, stall or break their stream (the mock's ``model_behaviours``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

#: The failures injected, by model name, in each provider's real wire format.
BEHAVIOURS: dict[str, Behaviour] = {
    "missing-*": Behaviour(status=404, error_code="model_not_found"),
    "limited-*": Behaviour(status=429, headers={"retry-after": "1"}),
    "broken-*": Behaviour(drop_after_chunks=1),
    "refused-*": Behaviour(status=401, error_message="Incorrect API key provided: sk-up-SECRET"),
    "crash-*": Behaviour(status=500),
    "slow-*": Behaviour(delay_ms=4000),
    "down-*": Behaviour(status=503),
    "invalid-*": Behaviour(status=400, error_message="Invalid value for 'temperature'"),
}

PROVIDERS: dict[str, list[str]] = {
    "good": ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"],
    "mixed": ["ok-model", "missing-model", "broken-model", "limited-model"],
    "bad": ["refused-model", "crash-model", "slow-model", "down-model", "invalid-model"],
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
        "probe": {"timeout_seconds": 2, "max_models_per_gateway": 5},
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
    assert "[FAIL] bad           :  0/ 5 passed (  0.0%)" in summary
    assert "TOTAL: 3/11 models passed (27.3%)" in summary
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
    assert "503 service unavailable" in _line(text, "down-model")
    assert "400 bad parameters: Invalid value for 'temperature'" in _line(text, "invalid-model")
    assert "ttft" in _line(text, "gpt-4o-mini")


def test_json_report_has_every_model_and_no_secret(run: Any, key: str) -> None:
    _, report = run
    models = {m["model"].split("/", 1)[1]: m for p in report["providers"] for m in p["models"]}
    assert report["exit_code"] == 1
    assert report["total"] == {**report["total"], "tested": 11, "passed": 3, "failed": 8}
    assert models["missing-model"]["reason"] == "not_found"
    assert models["limited-model"]["reason"] == "rate_limited"
    # The 429's retry-after (1 s, within the 2 s timeout) was waited once, then classified.
    assert models["limited-model"]["tiers"][1]["waited_s"] == 1.0
    assert models["broken-model"]["reason"] == "broken_stream"
    assert [t["tier"] for t in models["broken-model"]["tiers"]] == ["listed", "chat", "stream"]
    assert models["refused-model"]["reason"] == "auth"
    assert models["crash-model"]["reason"] == "server_error"
    assert models["slow-model"]["reason"] == "timeout"
    assert models["down-model"]["reason"] == "unavailable"
    assert models["invalid-model"]["reason"] == "bad_request"
    assert models["gpt-4o-mini"]["ok"] and models["gpt-4o-mini"]["ttft_ms"] is not None
    assert models["gpt-4o-mini"]["tokens"] > 0
    raw = json.dumps(report)
    assert key not in raw and "sk-up-SECRET" not in raw


def test_probe_calls_are_tagged_in_usage_rows(run: Any, gw: GatewayProcess, key: str) -> None:
    plain = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "good/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert plain.status_code == 200
    gw_rows = "SELECT probe, count(*), sum(cost_nanos) FROM usage_records GROUP BY probe"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = {r[0]: r[1:] for r in gw.db_query(gw_rows)}
        if rows.get(0, (0,))[0] >= 1 and rows.get(1, (0,))[0] >= 9:
            break
        time.sleep(0.1)
    assert rows[1][0] >= 9 and rows[0][0] >= 1, rows
    # Tagged, and billed like any call: the probe's priced model cost something.
    assert rows[1][1] > 0, rows
    _, report = run
    good = next(p for p in report["providers"] if p["name"] == "good")
    assert good["models"][0]["cost_usd"] != "0.000000000"


def test_history_and_readiness_show_the_run(run: Any, gw: GatewayProcess) -> None:
    result = probe(gw, "history")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "PROVIDER", "RUNS", "OK"]
    good = next(line for line in lines if line.startswith("good/gpt-4o-mini "))
    assert "100.0%" in good
    one = probe(gw, "history", "--model", "bad/slow-model").stdout.splitlines()
    assert one[0].split()[:3] == ["MODEL", "PROVIDER", "DAY"]  # per day for one model
    assert len(one) == 2 and "0.0%" in one[1] and "FAIL" in one[1]
    ready = httpx.get(gw.url + "/health/ready").json()
    assert ready["probes"]["good"]["tested"] == 2 and ready["probes"]["good"]["passed"] == 2
    assert ready["probes"]["bad"]["passed"] == 0


def test_the_probe_tag_does_not_lift_limits(gw: GatewayProcess) -> None:
    """A probe is limited like any call of its key: past its rpm, the gateway's own 429."""
    limited = gw.create_key("rpm-limited", rpm=2)
    result = probe(gw, "--provider", "good", "--stream", "--no-history", key=limited)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "429 rate limited" in result.stdout


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
    bad_setting = gw.workdir / "bad.yaml"
    bad_setting.write_text("probe:\n  max_models: 3\n")
    refused = subprocess.run(
        [sys.executable, "-m", "llmrelay", "probe", "--config", str(bad_setting)],
        capture_output=True,
        text=True,
        timeout=60,
        env=gw.env(),
    )
    assert refused.returncode == 2 and "max_models" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_local_gateway_without_url(gw: GatewayProcess) -> None:
    """No --url: the probe starts ``llmrelay serve`` on the config with a temporary key."""
    result = probe(gw, "--provider", "good", "--no-history")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TOTAL: 2/2 models passed (100.0%)" in result.stdout
    rows = gw.db_query("SELECT enabled FROM api_keys WHERE name LIKE 'probe-%'")
    assert rows and all(not enabled for (enabled,) in rows)


def test_history_and_readiness_on_postgres(
    mocks: dict[str, MockUpstream],
    make_postgres_db: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The probe_results table, the probe column and the readiness query on PostgreSQL."""
    config: dict[str, Any] = {
        "mock_provider": False,
        "database_url": make_postgres_db(),
        "provider_reload_interval": 300,
        "providers": [
            {"name": n, "type": "openai", "base_url": mocks[n].base_url, "api_key": "sk-up"}
            for n in ("good", "bad")
        ],
        "probe": {"timeout_seconds": 2},
    }
    gateway = GatewayProcess(tmp_path_factory.mktemp("probe-pg"), config).start()
    try:
        key = gateway.create_key("prober")
        result = probe(gateway, key=key)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "[OK] good" in result.stdout and "[FAIL] bad" in result.stdout
        ready = httpx.get(gateway.url + "/health/ready").json()["probes"]
        assert ready["good"] == {**ready["good"], "tested": 2, "passed": 2}
        assert ready["bad"]["passed"] == 0
        history = probe(gateway, "history").stdout
        assert "good/gpt-4o-mini" in history and "100.0%" in history
        deadline = time.monotonic() + 30  # usage rows are written in batches, after the answer
        while time.monotonic() < deadline:
            tagged = gateway.db_query("SELECT count(*) FROM usage_records WHERE probe")[0][0]
            if tagged >= 5:
                break
            time.sleep(0.1)
        assert tagged >= 5
    finally:
        gateway.stop()


def test_a_local_gateway_that_cannot_start_exits_2_with_its_reason(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text("database_url: postgresql+asyncpg://nobody@127.0.0.1:1/none\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay", "probe", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=gw.env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "local gateway" in result.stderr and "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
