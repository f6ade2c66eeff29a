"""The model label of /metrics is bounded: client-chosen model names cannot grow series forever."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from llmrelay.telemetry.metrics import MAX_MODEL_LABELS, Metrics


def _row(model: str) -> Any:
    return SimpleNamespace(
        provider="mock",
        upstream_model=model,
        route="/v1/chat/completions",
        status=200,
        key_name="k",
        latency_ms=1.0,
        overhead_ms=0.1,
        usage=None,
        cache=None,
        cost_saved_nanos=None,
        cost_nanos=None,
        attempts=[],
        ttft_ms=None,
    )


def test_distinct_model_names_beyond_the_cap_are_counted_as_other() -> None:
    metrics = Metrics(lambda: (0, 0, {}))
    metrics.observe([_row(f"hostile-{i}") for i in range(MAX_MODEL_LABELS + 300)])
    metrics.observe([_row("x" * 10_000), _row("hostile-1")])
    text = metrics.render().decode()
    series = [line for line in text.splitlines() if line.startswith("llmrelay_requests_total{")]
    assert len(series) == MAX_MODEL_LABELS + 1
    other = next(line for line in series if 'model="other"' in line)
    assert other.endswith(" 301.0")
    assert 'model="hostile-1"' in text and "x" * 200 not in text
