"""The per-call series, counted from the log writer's batches (``Metrics.observe``).

The log writer's spool step feeds each slice of recorded calls here, on the event loop,
so what a row costs here is what a request waiting behind the step waits for. Rows are
first grouped by what labels them (route, provider, model, status, cache verdict, and
the key when per-key series are on): per row that is one tuple, one dict lookup and a
few additions. Each group then finds its series' children in one lookup (bound once per
group key, :class:`_Bound`, bounded) and adds its sums: one ``inc`` per counter, and
for a histogram one ``inc`` per bucket its values fall in plus one for the sum, instead
of an ``observe`` (two locked adds and a bucket scan) per value. The per-row sums as
``(series, labels)`` dict keys and a
``observe`` per value measured ~10 µs a call, the largest part of the spool step's
event-loop time (bench/loop_stalls.py); what is exported is the same.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmrelay.telemetry.interaction import Interaction

if TYPE_CHECKING:
    from llmrelay.telemetry.metrics import Metrics

#: Bound series children kept for reuse (a bound on memory, not on the series).
_MAX_CHILDREN = 20_000
#: Group keys whose bound children are kept (a bound on memory, as above).
_MAX_GROUPS = 2_000
#: What labels a group: route, provider, upstream model, status, cache verdict, key.
_GroupKey = tuple[str, str | None, str | None, int, str | None, str | None]


class _Group:
    """The sums of the rows of one batch that share every label."""

    __slots__ = (
        "cached",
        "calls",
        "completion",
        "cost",
        "overheads",
        "prompt",
        "saved",
        "seconds",
        "skips",
        "tpot",
        "ttft",
        "usage",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.seconds: list[float] = []
        self.overheads: list[float] = []
        self.usage = 0  # rows with a usage
        self.prompt = 0
        self.completion = 0
        self.cached = 0
        self.cost = 0  # nano-dollars, summed exactly
        self.saved = 0
        self.ttft: list[float] = []
        self.tpot: list[float] = []
        self.skips: dict[str, int] | None = None  # circuit skips by provider

    def add(self, it: Interaction) -> None:
        self.calls += 1
        self.seconds.append(it.latency_ms / 1000)
        self.overheads.append(it.overhead_ms / 1000)
        if it.cost_nanos:
            self.cost += it.cost_nanos
        if it.cost_saved_nanos:
            self.saved += it.cost_saved_nanos
        u = it.usage
        if u is not None:
            self.usage += 1
            self.prompt += u.prompt_tokens
            self.completion += u.completion_tokens
            if u.cached_tokens:
                self.cached += u.cached_tokens
        for attempt in it.attempts:
            skipped = attempt.get("skipped")
            if skipped and str(skipped).startswith("circuit_"):
                if self.skips is None:
                    self.skips = {}
                provider = str(attempt.get("provider", ""))
                self.skips[provider] = self.skips.get(provider, 0) + 1
        if it.ttft_ms is not None:
            self.ttft.append(it.ttft_ms / 1000)
            if u is not None and u.completion_tokens > 1:
                after = max(0.0, it.latency_ms - it.ttft_ms) / 1000
                self.tpot.append(after / (u.completion_tokens - 1))


class _Bound:
    """The children one group key's batches count into, bound once."""

    __slots__ = (
        "cache_requests",
        "key_requests",
        "latency",
        "llm_duration",
        "llm_requests",
        "model",
        "overhead",
        "provider",
        "requests",
        "seed_cache_requests",
        "tokens",
    )

    def __init__(
        self,
        provider: str,
        model: str,
        requests: Any,
        llm_requests: Any,
        key_requests: Any,
        latency: Any,
        llm_duration: Any,
        overhead: Any,
        cache_requests: Any,
        seed_cache_requests: Any,
    ) -> None:
        self.provider = provider
        self.model = model
        self.requests = requests
        self.llm_requests = llm_requests
        self.key_requests = key_requests
        self.latency = latency
        self.llm_duration = llm_duration
        self.overhead = overhead
        self.cache_requests = cache_requests
        self.seed_cache_requests = seed_cache_requests
        #: prompt, completion, input, output: bound at the group's first usage.
        self.tokens: tuple[Any, Any, Any, Any] | None = None


class BatchMetrics:
    """Counts batches of recorded calls into ``metrics``' per-call series."""

    def __init__(
        self, metrics: Metrics, model_label: Callable[[str], str], *, key_labels: bool
    ) -> None:
        self._m = metrics
        self._model_label = model_label
        self._key_labels = key_labels
        #: Bound children of the per-call series: prometheus-client's ``labels()``
        #: validates and locks on every call; the label values are bounded already.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: Per group key, the children its every batch counts into (one lookup a group
        #: instead of a tuple, a model label and a lookup per series).
        self._bound: dict[_GroupKey, _Bound] = {}

    def observe(self, batch: list[Interaction]) -> None:
        groups: dict[_GroupKey, _Group] = {}
        keyed = self._key_labels
        for it in batch:
            key = (
                it.route,
                it.provider,
                it.upstream_model,
                it.status,
                it.cache,
                it.key_name if keyed else None,
            )
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group()
            group.add(it)
        for key, group in groups.items():
            self._count(key, group)

    def _count(self, key: _GroupKey, g: _Group) -> None:
        b = self._bound.get(key)
        if b is None:
            if len(self._bound) >= _MAX_GROUPS:
                self._bound.clear()
            b = self._bound[key] = self._bind(key)
        m = self._m
        calls = g.calls
        b.requests.inc(calls)
        b.llm_requests.inc(calls)
        if b.key_requests is not None:
            b.key_requests.inc(calls)
        _observe_all(b.latency, g.seconds)
        _observe_all(b.llm_duration, g.seconds)
        _observe_all(b.overhead, g.overheads)
        if b.cache_requests is not None:
            b.cache_requests.inc(calls)
            b.seed_cache_requests.inc(calls)
            if g.saved:
                m.cache_saved.inc(g.saved / 1e9)
        provider, model = b.provider, b.model
        child = self._child
        if g.cost:
            child(m.cost, provider, model).inc(g.cost / 1e9)
        if g.usage:
            if b.tokens is None:
                b.tokens = (
                    child(m.tokens, provider, model, "prompt"),
                    child(m.tokens, provider, model, "completion"),
                    child(m.llm_tokens, provider, model, "input"),
                    child(m.llm_tokens, provider, model, "output"),
                )
            prompt, completion, llm_input, llm_output = b.tokens
            prompt.inc(g.prompt)
            completion.inc(g.completion)
            llm_input.inc(g.prompt)
            llm_output.inc(g.completion)
            if g.cached:
                child(m.tokens, provider, model, "cached").inc(g.cached)
                child(m.llm_tokens, provider, model, "cached").inc(g.cached)
        if g.skips:
            for skipped, n in g.skips.items():
                child(m.circuit_opened, skipped).inc(n)
        if g.ttft:
            _observe_all(child(m.ttft, provider), g.ttft)
        if g.tpot:
            _observe_all(child(m.tpot, provider), g.tpot)

    def _bind(self, key: _GroupKey) -> _Bound:
        """The children every batch of ``key``'s group counts into (the conditional ones,
        but the tokens', through :meth:`_child` when used: binding one makes its series)."""
        route, provider_name, upstream_model, status, cache, key_name = key
        m, child = self._m, self._child
        provider = provider_name or ""
        model = self._model_label(upstream_model or "")
        outcome = "success" if status < 400 else "error"
        result = cache.lower() if cache is not None else None
        return _Bound(
            provider,
            model,
            child(m.requests, route, provider, model, str(status)),
            child(m.llm_requests, provider, model, outcome),
            child(m.key_requests, key_name) if key_name else None,
            child(m.latency, route, provider),
            child(m.llm_duration, provider),
            child(m.overhead, route),
            child(m.cache_requests, result) if result is not None else None,
            child(m.seed_cache_requests, result) if result is not None else None,
        )

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            if len(self._children) >= _MAX_CHILDREN:
                self._children.clear()
            found = self._children[key] = metric.labels(*values)
        return found


def _observe_all(child: Any, values: list[float]) -> None:
    """``child.observe(v)`` for every value, as one add per bucket touched and one to the
    sum. Reads prometheus-client's histogram internals (``_upper_bounds``, ``_buckets``,
    ``_sum``, the same in its multiprocess mode); tests/unit/test_batch_metrics.py checks
    the result against ``observe`` one value at a time."""
    bounds = child._upper_bounds
    if len(values) == 1:  # the usual slice of a spool step: one call per group
        v = values[0]
        child._sum.inc(v)
        if v == v:
            child._buckets[bisect_left(bounds, v)].inc(1)
        return
    counts: dict[int, int] = {}
    for v in values:
        if v == v:  # observe() puts a NaN in no bucket (only in the sum)
            i = bisect_left(bounds, v)  # the first bucket with v <= its bound, as observe()
            counts[i] = counts.get(i, 0) + 1
    child._sum.inc(sum(values))
    buckets = child._buckets
    for i, n in counts.items():
        buckets[i].inc(n)
