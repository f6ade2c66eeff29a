"""``Metrics.observe`` counts a batch as sums per label group (telemetry/batch_metrics.py):
what it exports must be what counting each call on its own exports."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmrelay.providers.base import Usage
from llmrelay.telemetry.batch_metrics import _observe_all
from llmrelay.telemetry.interaction import Interaction
from llmrelay.telemetry.metrics import Metrics


def _one_at_a_time(m: Metrics, it: Interaction, key_labels: bool) -> None:
    """The series of one call, each by its own ``labels().inc()`` / ``observe()``."""
    provider = it.provider or ""
    model = it.upstream_model or ""
    m.requests.labels(it.route, provider, model, str(it.status)).inc()
    if it.key_name and key_labels:
        m.key_requests.labels(it.key_name).inc()
    m.latency.labels(it.route, provider).observe(it.latency_ms / 1000)
    m.overhead.labels(it.route).observe(it.overhead_ms / 1000)
    outcome = "success" if it.status < 400 else "error"
    m.llm_requests.labels(provider, model, outcome).inc()
    m.llm_duration.labels(provider).observe(it.latency_ms / 1000)
    if it.cache is not None:
        m.cache_requests.labels(it.cache.lower()).inc()
        m.seed_cache_requests.labels(it.cache.lower()).inc()
        if it.cost_saved_nanos:
            m.cache_saved.inc(it.cost_saved_nanos / 1e9)
    if it.cost_nanos:
        m.cost.labels(provider, model).inc(it.cost_nanos / 1e9)
    u = it.usage
    if u is not None:
        for series, names in (
            (m.tokens, ("prompt", "completion")),
            (m.llm_tokens, ("input", "output")),
        ):
            series.labels(provider, model, names[0]).inc(u.prompt_tokens)
            series.labels(provider, model, names[1]).inc(u.completion_tokens)
            if u.cached_tokens:
                series.labels(provider, model, "cached").inc(u.cached_tokens)
    for attempt in it.attempts:
        if str(attempt.get("skipped", "")).startswith("circuit_"):
            m.circuit_opened.labels(str(attempt.get("provider", ""))).inc()
    if it.ttft_ms is not None:
        m.ttft.labels(provider).observe(it.ttft_ms / 1000)
        if u is not None and u.completion_tokens > 1:
            after = max(0.0, it.latency_ms - it.ttft_ms) / 1000
            m.tpot.labels(provider).observe(after / (u.completion_tokens - 1))


def _rows(n: int, seed: int) -> list[Interaction]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        stream = rng.random() < 0.4
        usage = (
            Usage(
                prompt_tokens=rng.randrange(100),
                completion_tokens=rng.randrange(4),
                total_tokens=0,
                cached_tokens=rng.choice([0, 0, 7]),
            )
            if rng.random() < 0.8
            else None
        )
        attempts: list[dict[str, Any]] = [{"provider": "a", "status": 200}]
        if rng.random() < 0.2:
            attempts.insert(0, {"provider": "b", "skipped": "circuit_open"})
        rows.append(
            Interaction(
                id=str(i),
                request_id=str(i),
                created_at=datetime.now(UTC),
                route=rng.choice(["/v1/chat/completions", "/v1/embeddings"]),
                method="POST",
                status=rng.choice([200, 200, 200, 429, 502]),
                latency_ms=rng.choice([0.3, 0.5, 2.5, 5.0, 999.0, rng.uniform(0, 5000)]),
                overhead_ms=rng.uniform(0, 3),
                ttft_ms=rng.uniform(0, 500) if stream else None,
                stream=stream,
                provider=rng.choice(["mock", "openai", None]),
                upstream_model=rng.choice(["echo", "gpt-4o", None]),
                key_name=rng.choice(["k1", "k2", None]),
                usage=usage,
                cost_nanos=rng.choice([None, 0, 1_500_000_000, rng.randrange(10**9)]),
                cache=rng.choice([None, "HIT", "MISS"]),
                cost_saved_nanos=rng.choice([None, rng.randrange(10**8)]),
                attempts=attempts,
            )
        )
    return rows


def _samples(m: Metrics) -> dict[tuple[Any, ...], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


@pytest.mark.parametrize("key_labels", [False, True])
def test_a_batch_exports_what_counting_each_call_exports(key_labels: bool) -> None:
    rows = _rows(400, seed=14)
    batched = Metrics(lambda: (0, 0, {}), key_labels=key_labels)
    for start in range(0, len(rows), 16):  # as the spool step feeds it, slice by slice
        batched.observe(rows[start : start + 16])
    single = Metrics(lambda: (0, 0, {}), key_labels=key_labels)
    for it in rows:
        _one_at_a_time(single, it, key_labels)
    got, want = _samples(batched), _samples(single)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name


def test_histogram_values_on_bucket_bounds_and_nan_land_where_observe_puts_them() -> None:
    values = [0.005, 0.01, 0.0049999, 0.0, -1.0, 600.0, math.inf, 1e9, math.nan]
    a, b = Metrics(lambda: (0, 0, {})), Metrics(lambda: (0, 0, {}))
    _observe_all(a.latency.labels("r", "p"), values)
    child = b.latency.labels("r", "p")
    for v in values:
        child.observe(v)
    got, want = _samples(a), _samples(b)
    sums = [k for k in want if k[0] == "llmrelay_request_seconds_sum"]
    assert all(math.isnan(got[k]) and math.isnan(want[k]) for k in sums)
    assert {k: v for k, v in got.items() if k not in sums} == {
        k: v for k, v in want.items() if k not in sums
    }


def test_one_value_lands_where_observe_puts_it() -> None:
    for v in [0.005, 0.01, 0.0049999, 0.0, -1.0, 600.0, math.inf, 1e9, math.nan]:
        a, b = Metrics(lambda: (0, 0, {})), Metrics(lambda: (0, 0, {}))
        _observe_all(a.latency.labels("r", "p"), [v])
        b.latency.labels("r", "p").observe(v)
        got, want = _samples(a), _samples(b)
        assert got.keys() == want.keys()
        for k, w in want.items():
            assert got[k] == w or (math.isnan(got[k]) and math.isnan(w)), (v, k)
