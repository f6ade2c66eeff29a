"""The PromQL name reader the dashboard test relies on, on the seed's own queries."""

from __future__ import annotations

from tests.observability.promql import metric_names


def test_reads_the_series_of_seed_queries() -> None:
    assert metric_names("rate(llm_requests_total[5m])") == {"llm_requests_total"}
    assert metric_names(
        "histogram_quantile(0.95, rate(llm_request_duration_seconds_bucket[5m]))"
    ) == {"llm_request_duration_seconds_bucket"}
    assert metric_names(
        '(rate(cache_requests_total{result="hit"}[5m]) / rate(cache_requests_total[5m])) * 100'
    ) == {"cache_requests_total"}
    assert metric_names("cache_hit_rate * 100") == {"cache_hit_rate"}
    assert metric_names("sum by (provider, model) (increase(llm_cost_total_usd[24h]))") == {
        "llm_cost_total_usd"
    }
    assert metric_names('a_total{x="rate(b)"} / ignoring(le) c 1e3') == {"a_total", "c"}
