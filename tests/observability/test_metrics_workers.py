"""``llmrelay serve --workers 2``: N calls spread over both workers, and every scrape,
whichever worker answers it, counts N; the Grafana dashboard reads only series that
such a scrape exports; seed 004's queries name exported series."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_proc import GatewayProcess, free_port, wait_workers_ready
from tests.observability.promql import metric_names
from tests.services import REDIS_HOST, REDIS_PORT

pytestmark = pytest.mark.redis

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "llmrelay.json"
SEED_QUERIES = [
    "rate(llm_requests_total[5m])",
    "histogram_quantile(0.95, rate(llm_request_duration_seconds_bucket[5m]))",
    "rate(llm_cost_total_usd[1h])",
    '(rate(cache_requests_total{result="hit"}[5m]) / rate(cache_requests_total[5m])) * 100',
    '(rate(llm_requests_total{status="error"}[5m]) / rate(llm_requests_total[5m])) * 100',
    "increase(llm_cost_total_usd[24h])",
    "cache_hit_rate * 100",
]
FALLBACK = json.dumps(
    {
        "strategy": "fallback",
        "targets": [
            {"provider": "dead", "model": "x"},
            {"provider": "mock", "model": "echo"},
        ],
    }
)


@dataclass
class Served:
    base: str
    metrics_dir: Path
    calls: int
    secret: str


def _scrape(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """One scrape on a fresh connection, as ``{sample name: {labels: value}}``."""
    with httpx.Client() as client:
        text = client.get(base + "/metrics").text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _total(scrape: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return sum(scrape.get(name, {}).values())


@pytest.fixture(scope="module")
def served(redis_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("metrics-workers")
    prefix = f"{{metrics-{uuid.uuid4().hex}}}:"
    config = {
        "database_url": f"sqlite+aiosqlite:///{tmp / 'w.db'}",
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "redis_prefix": prefix,
        "redis_timeout": 2.0,
        "log_file": "none",
        "log_flush_interval": 0.02,
        "provider_reload_interval": 0,
        "plugins": {"cache": {"ttl": 600}},
        "providers": [
            {
                "name": "dead",
                "type": "openai_compatible",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "api_key": "dead-provider-secret-key",
                "connect_timeout": 1,
            }
        ],
        "routing": {"circuit_breaker": {"failure_threshold": 1, "cooldown": 600}},
    }
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    # The operator's directory, with a previous run's file: serve empties it first.
    metrics_dir = tmp / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    port = free_port()
    argv = [sys.executable, "-m", "llmrelay", "serve", "--config", str(path)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_workers_ready(proc, base, 60)
        gw = GatewayProcess(tmp, config)
        gw.config_path = path
        key = gw.create_key("metered")
        limited = gw.create_key("limited", rpm=1)
        yield Served(base, metrics_dir, _serve_calls(base, key, limited), key)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.stderr:
                proc.stderr.close()
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        stale = list(client.scan_iter(match=prefix + "*"))
        if stale:
            client.delete(*stale)
        client.close()


def _serve_calls(base: str, key: str, limited: str) -> int:
    """Misses, cache hits, streams, a fallback past a dead provider (its circuit opens,
    then it is skipped) and a rate-limited key; returns how many calls were answered."""
    auth = {"authorization": f"Bearer {key}"}

    def chat(content: str, stream: bool = False, headers: dict[str, str] | None = None) -> int:
        body = {
            "model": "mock/echo",
            "stream": stream,
            "messages": [{"role": "user", "content": content}],
        }
        with httpx.Client(timeout=30) as client:  # a connection each: both workers serve
            return client.post(
                base + "/v1/chat/completions", json=body, headers={**auth, **(headers or {})}
            ).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(chat, [f"question number {i}" for i in range(20)]))
    codes += [chat("question number 0") for _ in range(3)]  # hits, from Redis
    codes += [chat(f"a longer streamed question {i}, please", stream=True) for i in range(2)]
    codes += [chat(f"fallback {i}", headers={"x-llmrelay-config": FALLBACK}) for i in range(2)]
    assert codes == [200] * len(codes), codes
    auth = {"authorization": f"Bearer {limited}"}
    assert [chat(f"limited {i}") for i in range(3)].count(429) >= 1
    return len(codes) + 1


def _settled(base: str, calls: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    deadline = time.monotonic() + 15
    while True:
        scrape = _scrape(base)
        if _total(scrape, "llm_requests_total") >= calls or time.monotonic() > deadline:
            return scrape
        time.sleep(0.1)


def test_every_scrape_sums_every_worker(served: Served) -> None:
    _settled(served.base, served.calls)
    pids = {p.stem.rsplit("_", 1)[1] for p in served.metrics_dir.glob("*.db")}
    assert "999999" not in pids and len(pids) >= 2, pids  # stale file gone, two workers
    # Live gauges are written by each worker every second: wait out one refresh.
    deadline = time.monotonic() + 5
    while _scrape(served.base)["llmrelay_provider_up"].get((("provider", "dead"),)) != 0:
        assert time.monotonic() < deadline, "provider_up of the dead provider stayed 1"
        time.sleep(0.2)
    time.sleep(1.2)
    for _ in range(8):  # fresh connections: the scrape lands on either worker
        scrape = _scrape(served.base)
        assert _total(scrape, "llm_requests_total") == served.calls
        assert _total(scrape, "llmrelay_requests_total") == served.calls
        assert _total(scrape, "llm_request_duration_seconds_count") == served.calls
        hits = scrape["cache_requests_total"][(("result", "hit"),)]
        assert hits == 3
        assert _total(scrape, "cache_requests_total") == served.calls
        assert scrape["cache_hit_rate"][()] == pytest.approx(3 / served.calls)
        assert _total(scrape, "llmrelay_time_to_first_token_seconds_count") == 2
        assert _total(scrape, "llmrelay_circuit_skips_total") == 1
        # The writer's and key store's stats too, not the answering worker's alone:
        # every call's row is written once, by whichever worker served it.
        assert _total(scrape, "llmrelay_log_rows_written_total") == served.calls
        assert _total(scrape, "llmrelay_key_queries_total") >= 1
        assert scrape["llmrelay_log_database_available"] == {(): 1.0}
        assert scrape["llmrelay_key_database_down"] == {(): 0.0}
        # Live gauges: one value over the workers (summed, or the lowest health).
        assert scrape["llmrelay_open_streams"] == {(): 0.0}
        assert scrape["llmrelay_log_queue_rows"] == {(): 0.0}
        assert scrape["llmrelay_provider_up"][(("provider", "dead"),)] == 0
        assert scrape["llmrelay_provider_up"][(("provider", "mock"),)] == 1
        circuit = scrape["llmrelay_circuit_state"]  # Redis-shared: any worker sees it
        assert circuit[(("state", "open"), ("target", "dead/x"))] == 1
        assert circuit[(("state", "closed"), ("target", "dead/x"))] == 0
        assert _total(scrape, "llmrelay_rejections_total") >= 1
        assert scrape["llmrelay_rejections_total"].keys() == {
            (("key", ""), ("reason", "rate_limited"))
        }  # no key names unless metrics_key_labels
        input_tokens = scrape["llm_tokens_total"][
            (("model", "echo"), ("provider", "mock"), ("type", "input"))
        ]
        assert input_tokens > 0
        assert (
            scrape["llm_requests_total"][
                (("model", "echo"), ("provider", "mock"), ("status", "success"))
            ]
            == served.calls
        )


def test_secrets_never_in_metrics(served: Served) -> None:
    with httpx.Client() as client:
        text = client.get(served.base + "/metrics").text
    assert served.secret not in text and "dead-provider-secret-key" not in text
    assert '"metered"' not in text and '"limited"' not in text


def test_seed_queries_and_dashboard_read_exported_series(served: Served) -> None:
    scrape = _settled(served.base, served.calls)
    exported = set(scrape)
    for query in SEED_QUERIES:
        assert metric_names(query) <= exported, query
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    for seed_panel in ("Requests/sec", "Latency P95", "Cost Today", "Cache Hit %"):
        assert seed_panel in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
