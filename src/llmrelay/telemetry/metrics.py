"""Prometheus metrics, updated from the log writer's batches, not on the hot path.

Counting in the writer task costs the request nothing; the price is that counters lag
the traffic by at most one flush interval, which no scrape interval can notice.

Two name sets are exported side by side (docs/observability.md): llmrelay's own
``llmrelay_*`` series, and the series of seed 004's queries and dashboard (``llm_*``,
``cache_*``), so that those queries work unchanged. With several worker processes the
values live in prometheus-client's multiprocess files (:mod:`llmrelay.telemetry.scrape`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from llmrelay.telemetry import scrape
from llmrelay.telemetry.batch_metrics import BatchMetrics
from llmrelay.telemetry.interaction import Interaction

if TYPE_CHECKING:
    from llmrelay.governance.budgets import BudgetState

#: Seed 004's ``llm_request_duration_seconds``: from sub-millisecond cache hits to
#: ten-minute streams.
_DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
)  # fmt: skip
#: Time to first token of a stream, and time per output token after it.
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_TPOT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class _Live(Collector):
    """Gauges read at scrape time: open streams, queued log rows, provider health."""

    def __init__(self, read: Callable[[], tuple[int, int, dict[str, bool]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        streams, pending, providers = self._read()
        yield GaugeMetricFamily("llmrelay_open_streams", "Streams being relayed now", value=streams)
        yield GaugeMetricFamily(
            "llmrelay_log_queue_rows", "Interaction rows not yet written", value=pending
        )
        up = GaugeMetricFamily(
            "llmrelay_provider_up", "1 unless the provider's last call failed", labels=["provider"]
        )
        for name, ok in providers.items():
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up


#: The log writer's stats (``LogWriter.stats_dict``): counters, then gauges with the
#: multiprocess mode that combines the workers' values.
WRITER_COUNTERS = (
    ("llmrelay_log_rows_written", "written", "Log rows written to the database"),
    (
        "llmrelay_log_rows_dead_lettered",
        "dead_lettered",
        "Log rows the database refused, set aside in dead-letter.jsonl",
    ),
    (
        "llmrelay_log_rows_dropped",
        "dropped",
        "Log rows lost because the local spool could not keep up",
    ),
    (
        "llmrelay_log_rows_replayed",
        "replayed",
        "Log rows replayed from the spool of a stopped process",
    ),
    (
        "llmrelay_log_write_failures",
        "failed_batches",
        "Log batch writes that failed (and were retried or split)",
    ),
)
WRITER_GAUGES = (
    ("llmrelay_log_spool_bytes", "spool_bytes", "Bytes in the log spool files", "livesum"),
    (
        "llmrelay_log_database_available",
        "database_available",
        "1 while the log writer reaches the database",
        "livemin",
    ),
)
#: The key store's counters (``KeyStore.counters``, as :func:`key_stats` flattens them).
KEY_COUNTERS = (
    ("llmrelay_key_queries", "queries", "Key lookups sent to the database"),
    (
        "llmrelay_key_negative_hits",
        "negative_hits",
        "Unknown keys answered from the negative cache",
    ),
    ("llmrelay_key_malformed", "malformed", "Keys refused for their shape alone"),
    (
        "llmrelay_key_stale_served",
        "stale_served",
        "Calls served from a stale key record while the database was unavailable",
    ),
    (
        "llmrelay_key_lookups_rejected",
        "busy_rejected",
        "Lookups answered 503 because every lookup slot was busy",
    ),
    (
        "llmrelay_key_database_failures",
        "database_failures",
        "Key lookups that failed or timed out",
    ),
)
KEY_GAUGES = (
    (
        "llmrelay_key_database_down",
        "database_down",
        "1 while key lookups treat the database as unavailable",
        "livemax",
    ),
)

Counters = tuple[tuple[str, str, str], ...]
Gauges = tuple[tuple[str, str, str, str], ...]


def key_stats(read: Callable[[], tuple[bool, dict[str, int]]]) -> Callable[[], dict[str, Any]]:
    """``KeyStore.counters`` as one mapping (``database_down`` among the counts)."""

    def flat() -> dict[str, Any]:
        down, stats = read()
        return {"database_down": down, **stats}

    return flat


class _Stats(Collector):
    """A component's stats read at scrape time (one process: its own values are all)."""

    def __init__(
        self, read: Callable[[], Mapping[str, Any]], counters: Counters, gauges: Gauges
    ) -> None:
        self._read = read
        self._counters = counters
        self._gauges = gauges

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._read()
        for name, key, doc, _mode in self._gauges:
            yield GaugeMetricFamily(name, doc, value=float(stats[key]))
        for name, key, doc in self._counters:
            yield CounterMetricFamily(name, doc, value=stats[key])


#: Distinct model label values kept per process; later ones are counted as ``other``.
MAX_MODEL_LABELS = 500
_MAX_LABEL_CHARS = 120


class _ModelLabels:
    """Caps the model label's cardinality: a client controls the model name (``mock/…``,
    any name a pass-through provider accepts), and every distinct value is a new series
    held forever by the registry and by every scraper, so unbounded names would be an
    unbounded memory leak in the gateway and in Prometheus."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, model: str) -> str:
        if model in self._seen:
            return model
        if len(model) > _MAX_LABEL_CHARS or len(self._seen) >= MAX_MODEL_LABELS:
            return "other"
        self._seen.add(model)
        return model


class Metrics:
    """Every series of the gateway; ``observe`` is fed the log writer's batches.

    ``key_labels`` (the ``metrics_key_labels`` setting) exports the per-key series
    (``llmrelay_key_requests``, the key's name on ``llmrelay_rejections``): off by
    default, as every key is a new series held forever by the gateway and Prometheus.
    """

    def __init__(
        self, live: Callable[[], tuple[int, int, dict[str, bool]]], *, key_labels: bool = False
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._key_labels = key_labels
        self._model_label = _ModelLabels()
        self._guard_label = _ModelLabels()
        self._entity_label = _ModelLabels()
        self._target_label = _ModelLabels()
        labels = ["route", "provider", "model", "status"]
        self.requests = Counter(
            "llmrelay_requests",
            "Model calls that reached a provider",
            labels,
            registry=self.registry,
        )
        self.tokens = Counter(
            "llmrelay_tokens",
            "Tokens billed",
            ["provider", "model", "kind"],
            registry=self.registry,
        )
        self.key_requests = Counter(
            "llmrelay_key_requests", "Model calls per virtual key", ["key"], registry=self.registry
        )
        self.latency = Histogram(
            "llmrelay_request_seconds",
            "Whole request time",
            ["route", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "llmrelay_overhead_seconds",
            "Time spent inside llmrelay (upstream excluded)",
            ["route"],
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.guardrail_findings = Counter(
            "llmrelay_guardrail_findings",
            "PII found by guardrails (counts, never values)",
            ["guardrail", "stage", "entity", "action"],
            registry=self.registry,
        )
        # The response cache (docs/cache.md): seed 004's cache_requests_total{result}, the
        # cost hits saved, and backend failures (each one served as a miss).
        self.cache_requests = Counter(
            "llmrelay_cache_requests",
            "Model calls by response cache result",
            ["result"],
            registry=self.registry,
        )
        self.cache_saved = Counter(
            "llmrelay_cache_saved_usd",
            "What cache hits would have cost upstream (USD)",
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "llmrelay_cache_backend_errors",
            "Cache lookups and stores that failed (served as misses)",
            ["backend"],
            registry=self.registry,
        )
        self.cache_embedding_tokens = Counter(
            "llmrelay_cache_embedding_tokens",
            "Tokens the semantic cache's own embedding calls used",
            registry=self.registry,
        )
        # Seed 004's series (docs/observability.md). ``llm_cost_total_usd`` and
        # ``cache_hit_rate`` are derived from these at scrape time (telemetry/scrape.py).
        self.llm_requests = Counter(
            "llm_requests",
            "Model calls answered (status: success or error)",
            ["provider", "model", "status"],
            registry=self.registry,
        )
        self.llm_duration = Histogram(
            "llm_request_duration_seconds",
            "Whole model call time, cache hits and streams included",
            ["provider"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.llm_tokens = Counter(
            "llm_tokens",
            "Tokens billed (type: input, output, cached)",
            ["provider", "model", "type"],
            registry=self.registry,
        )
        self.seed_cache_requests = Counter(
            "cache_requests",
            "Model calls by response cache result (hit, miss, bypass, refresh)",
            ["result"],
            registry=self.registry,
        )
        self.cost = Counter(
            "llmrelay_cost_usd",
            "USD spent upstream (exact cost of each answered call)",
            ["provider", "model"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "llmrelay_time_to_first_token_seconds",
            "Streams: from the request to the first content sent to the client",
            ["provider"],
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "llmrelay_time_per_output_token_seconds",
            "Streams: time after the first token, per further output token",
            ["provider"],
            buckets=_TPOT_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "llmrelay_rejections",
            "Calls refused by llmrelay's own limits (reason: rate_limited, budget_exceeded)",
            ["reason", "key"],
            registry=self.registry,
        )
        self.circuit_opened = Counter(
            "llmrelay_circuit_skips",
            "Attempts skipped because the target's circuit was open",
            ["provider"],
            registry=self.registry,
        )
        # Only with key_labels (Governor.budget_observer): one series per budget owner.
        self.budget_remaining = Gauge(
            "llmrelay_budget_remaining_usd",
            "What a key's or team's budget has left, as of its last admitted call",
            ["scope", "name", "period"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self._collectors: list[Collector] = []
        #: With several workers: the live gauges as multiprocess gauges (Services runs
        #: ``shared_live.run``); else read from ``live`` at each scrape.
        self.shared_live = scrape.SharedLive(live) if scrape.multiprocess() else None
        self._batches = BatchMetrics(self, self._model_label, key_labels=key_labels)
        if self.shared_live is None:
            self._add(_Live(live))

    def observe(self, batch: list[Interaction]) -> None:
        """Count a batch of recorded calls (the log writer's spool step, per slice):
        :mod:`llmrelay.telemetry.batch_metrics`."""
        self._batches.observe(batch)

    def observe_budgets(self, states: list[BudgetState]) -> None:
        """The remaining budgets an admitted call saw (set as ``Governor.budget_observer``
        only with ``metrics_key_labels``). Owners read ``key 'name'`` / ``team 'name'``."""
        for state in states:
            budget = state.budget
            name = budget.owner[len(budget.scope) + 2 : -1]
            left = max(0, budget.limit_nanos - state.spent - state.reserved) / 1e9
            self.budget_remaining.labels(budget.scope, name, budget.kind).set(left)

    def count_rejection(self, reason: str, key_name: str | None) -> None:
        """A call refused by a rate limit (429) or a budget (402), as it is refused:
        such calls leave no row to count from. Error path only."""
        key = (key_name or "") if self._key_labels else ""
        self.rejections.labels(reason, key).inc()

    def count_guardrail(self, stage: str, guardrail: str, entity: str, action: str) -> None:
        """One guardrail finding (types only, never values), as it is made: denied calls
        leave no row to count from. Guardrail names and entity types (custom patterns,
        a moderation service's categories) come from configs: bounded like model names."""
        self.guardrail_findings.labels(
            self._guard_label(guardrail), stage, self._entity_label(entity), action
        ).inc()

    def watch_writer(self, read: Callable[[], dict[str, Any]]) -> None:
        """Export the log writer's stats (``LogWriter.stats_dict``) at every scrape."""
        self._watch(read, WRITER_COUNTERS, WRITER_GAUGES)

    def watch_keys(self, read: Callable[[], tuple[bool, dict[str, int]]]) -> None:
        """Export the key store's counters (``KeyStore.counters``) at every scrape."""
        self._watch(key_stats(read), KEY_COUNTERS, KEY_GAUGES)

    def _watch(
        self, read: Callable[[], Mapping[str, Any]], counters: Counters, gauges: Gauges
    ) -> None:
        """One process: read at each scrape. Several workers: each writes its values to
        the multiprocess files (counters by their increase), so a scrape answered by any
        worker sums them all."""
        if self.shared_live is not None:
            self.shared_live.add_stats(read, counters, gauges)
        else:
            self._add(_Stats(read, counters, gauges))

    def _add(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._collectors.append(collector)

    def render(self, circuits: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
        """The exposition text: this process's registry, or with several workers every
        worker's counters and histograms summed (:func:`~llmrelay.telemetry.scrape.
        families`), plus the series derived from them; ``circuits`` is the breaker's
        ``snapshot()`` (read by the async handler: a shared breaker lives in Redis)."""
        if self.shared_live is not None:
            self.shared_live.refresh()  # this worker's own values, current
        families = scrape.families(self.registry, self._collectors)
        if circuits is not None:
            families.append(self._circuit_family(circuits))
        return generate_latest(scrape.Families(families))

    def _circuit_family(self, circuits: Mapping[str, Mapping[str, Any]]) -> GaugeMetricFamily:
        """``llmrelay_circuit_state{target, state}``: 1 for each target's current state
        (closed, open, half_open). Targets are ``provider/model``: capped like models."""
        family = GaugeMetricFamily(
            "llmrelay_circuit_state",
            "Circuit breaker state per target: 1 for the current state",
            labels=["target", "state"],
        )
        for key, circuit in circuits.items():
            target = self._target_label(key)
            if target == "other":
                continue
            current = str(circuit.get("state", ""))
            for state in ("closed", "open", "half_open"):
                family.add_metric([target, state], 1.0 if state == current else 0.0)
        return family
