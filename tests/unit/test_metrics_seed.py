"""Seed 004's series: exact names and types as Prometheus' text parser reads them, the
derived cost and hit rate, stream timings, and per-key series only when enabled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmrelay.providers.base import Usage
from llmrelay.telemetry.interaction import Interaction
from llmrelay.telemetry.metrics import Metrics


def _row(**kw: object) -> Interaction:
    fields: dict[str, object] = {
        "id": "i",
        "request_id": "r",
        "created_at": datetime.now(UTC),
        "route": "/v1/chat/completions",
        "method": "POST",
        "status": 200,
        "latency_ms": 2000.0,
        "overhead_ms": 0.4,
        "provider": "mock",
        "upstream_model": "echo",
        "key_name": "team-a",
    }
    fields.update(kw)
    return Interaction(**fields)  # type: ignore[arg-type]


def _families(metrics: Metrics) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        samples = {(s.name, *sorted(s.labels.items())): s.value for s in family.samples}
        out[family.name] = (family.type, samples)
    return out


def test_seed_series_names_types_and_values() -> None:
    metrics = Metrics(lambda: (0, 0, {}))
    usage = Usage(prompt_tokens=10, completion_tokens=21, total_tokens=31)
    metrics.observe(
        [
            _row(usage=usage, cost_nanos=1_500_000_000, cache="MISS", ttft_ms=1000.0, stream=True),
            _row(status=502, error_type="upstream_error", cache="HIT", latency_ms=0.3),
        ]
    )
    fams = _families(metrics)
    kind, samples = fams["llm_requests"]
    assert kind == "counter"
    assert (
        samples[
            ("llm_requests_total", ("model", "echo"), ("provider", "mock"), ("status", "success"))
        ]
        == 1
    )
    assert (
        samples[
            ("llm_requests_total", ("model", "echo"), ("provider", "mock"), ("status", "error"))
        ]
        == 1
    )
    kind, samples = fams["llm_cost_total_usd"]
    assert kind == "unknown"  # exposed exactly as llm_cost_total_usd, not ..._usd_total
    assert samples[("llm_cost_total_usd", ("model", "echo"), ("provider", "mock"))] == 1.5
    kind, samples = fams["cache_hit_rate"]
    assert kind == "gauge" and samples[("cache_hit_rate",)] == 0.5
    _, samples = fams["cache_requests"]
    assert samples[("cache_requests_total", ("result", "hit"))] == 1
    _, samples = fams["llm_tokens"]
    assert (
        samples[("llm_tokens_total", ("model", "echo"), ("provider", "mock"), ("type", "output"))]
        == 21
    )
    kind, samples = fams["llm_request_duration_seconds"]
    assert kind == "histogram"
    # The 0.3 ms cache hit lands in the first (0.5 ms) bucket.
    assert (
        samples[("llm_request_duration_seconds_bucket", ("le", "0.0005"), ("provider", "mock"))]
        == 1
    )
    _, samples = fams["llmrelay_time_to_first_token_seconds"]
    assert samples[("llmrelay_time_to_first_token_seconds_sum", ("provider", "mock"))] == 1.0
    _, samples = fams["llmrelay_time_per_output_token_seconds"]
    # 1 s after the first token for 20 further tokens.
    assert samples[
        ("llmrelay_time_per_output_token_seconds_sum", ("provider", "mock"))
    ] == pytest.approx(0.05)


def test_no_cost_no_cache_yet_still_exports_both_derived_series() -> None:
    fams = _families(Metrics(lambda: (0, 0, {})))
    assert fams["llm_cost_total_usd"][1] == {("llm_cost_total_usd",): 0.0}
    assert fams["cache_hit_rate"][1] == {("cache_hit_rate",): 0.0}


@pytest.mark.parametrize("key_labels", [False, True])
def test_key_names_only_when_enabled(key_labels: bool) -> None:
    metrics = Metrics(lambda: (0, 0, {}), key_labels=key_labels)
    metrics.observe([_row()])
    metrics.count_rejection("budget_exceeded", "team-a")
    fams = _families(metrics)
    rejections = fams["llmrelay_rejections"][1]
    assert rejections == {
        (
            "llmrelay_rejections_total",
            ("key", "team-a" if key_labels else ""),
            ("reason", "budget_exceeded"),
        ): 1
    }
    assert ("team-a" in metrics.render().decode()) is key_labels
