"""What one scrape of ``/metrics`` returns: the registry's families, summed over worker
processes when there are several, plus the series derived from them.

With ``--workers N`` each worker counts its own calls, and the load balancer in front
(or the kernel's ``SO_REUSEPORT``) hands a scrape to any one of them. ``serve`` therefore
runs the workers in prometheus-client's multiprocess mode: it points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before they start, every worker's
counters and histograms live in memory-mapped files there, and the worker answering a
scrape reads and sums all of them (:class:`~prometheus_client.multiprocess.
MultiProcessCollector`). Gauges read at scrape time (open streams, log queue, writer and
key store stats) are that worker's own, except open streams, queued log rows and
provider health, which every worker also writes as multiprocess gauges
(:class:`SharedLive`).

Two seed 004 series cannot be plain prometheus-client metrics and are derived here,
after the sum, so they are right for any number of workers:

* ``llm_cost_total_usd``: a Counter would be exposed as ``…_usd_total``; the seed's
  name is kept exactly, as an untyped family (the text format types a counter by its
  ``_total`` suffix) copied from ``llmrelay_cost_usd_total``.
* ``cache_hit_rate``: hits over all cache verdicts since the process (or the worker
  set) started, a gauge as the seed's dashboard reads it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

#: The environment variable of prometheus-client's multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Families:
    """The registry shape ``generate_latest`` needs, over a fixed list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def families(registry: CollectorRegistry, live: list[Collector]) -> list[Metric]:
    """This scrape's families: ``registry`` alone, or every worker's files summed and
    this worker's ``live`` collectors, then the derived series."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client.multiprocess import MultiProcessCollector

        summed = MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]
        out = list(summed.collect())  # type: ignore[no-untyped-call]
        for collector in live:
            out.extend(collector.collect())
    else:
        out = list(registry.collect())
    out.extend(derived(out))
    return out


def derived(families: list[Metric]) -> list[Metric]:
    """``llm_cost_total_usd`` and ``cache_hit_rate`` from the summed families."""
    by_name = {f.name: f for f in families}
    out: list[Metric] = []
    cost = by_name.get("llmrelay_cost_usd")
    total = Metric(
        "llm_cost_total_usd",
        "USD spent upstream; a counter (monotonic: use rate/increase), seed 004's name",
        "unknown",
    )
    if cost is not None:
        for sample in cost.samples:
            if sample.name == "llmrelay_cost_usd_total":
                total.add_sample("llm_cost_total_usd", sample.labels, sample.value)
    if not total.samples:
        total.add_sample("llm_cost_total_usd", {}, 0.0)
    out.append(total)
    hits = 0.0
    seen = 0.0
    cache = by_name.get("cache_requests")
    if cache is not None:
        for sample in cache.samples:
            if sample.name == "cache_requests_total":
                seen += sample.value
                if sample.labels.get("result") == "hit":
                    hits += sample.value
    out.append(
        GaugeMetricFamily(
            "cache_hit_rate",
            "Response cache hits over all cache verdicts since start (0 to 1)",
            value=hits / seen if seen else 0.0,
        )
    )
    return out


def multiprocess() -> bool:
    """Whether this process writes its metrics to the multiprocess files."""
    return bool(os.environ.get(MULTIPROC_ENV))


#: One component's stats: its reader, counters and gauges by stat key, last counts.
_Watched = tuple[Any, list[tuple[str, Any]], list[tuple[str, Any]], dict[str, float]]


class SharedLive:
    """With several workers, the live gauges (open streams, queued log rows, provider
    health) as multiprocess gauges: each worker writes its own value, refreshed every
    second by :meth:`run` and before each scrape it answers, and the scrape sums the
    streams and rows over the live workers and takes the lowest ``provider_up``. A
    worker that exits cleanly removes its values (:meth:`close`)."""

    def __init__(self, read: Callable[[], tuple[int, int, dict[str, bool]]]) -> None:
        from prometheus_client import Gauge

        self._read = read
        #: Components' stats written at each refresh (:meth:`add_stats`): the reader,
        #: its counters and gauges, and the counters' values at the last refresh.
        self._stats: list[
            tuple[Any, list[tuple[str, Any]], list[tuple[str, Any]], dict[str, float]]
        ] = []
        self.streams = Gauge(
            "llmrelay_open_streams",
            "Streams being relayed now",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.pending = Gauge(
            "llmrelay_log_queue_rows",
            "Interaction rows not yet written",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.up = Gauge(
            "llmrelay_provider_up",
            "1 unless the provider's last call failed",
            ["provider"],
            registry=None,
            multiprocess_mode="livemin",
        )

    def add_stats(
        self,
        read: Callable[[], Mapping[str, Any]],
        counters: tuple[tuple[str, str, str], ...],
        gauges: tuple[tuple[str, str, str, str], ...],
    ) -> None:
        """Also write a component's stats (the log writer's, the key store's) at each
        refresh: counters grow by what this worker's grew since the last refresh (the
        files keep a dead worker's share, so sums never go back), gauges are combined
        over the live workers by their mode (``livesum``, ``livemin``, ``livemax``)."""
        from prometheus_client import Counter, Gauge

        made_counters = [(key, Counter(name, doc, registry=None)) for name, key, doc in counters]
        made_gauges = [
            (key, Gauge(name, doc, registry=None, multiprocess_mode=mode))  # type: ignore[arg-type]
            for name, key, doc, mode in gauges
        ]
        self._stats.append((read, made_counters, made_gauges, {}))

    def refresh(self) -> None:
        for read, counters, gauges, last in self._stats:
            stats = read()
            for key, counter in counters:
                now = float(stats[key])
                grown = now - last.get(key, 0.0)
                if grown > 0:
                    counter.inc(grown)
                last[key] = now
            for key, gauge in gauges:
                gauge.set(float(stats[key]))
        streams, pending, providers = self._read()
        self.streams.set(streams)
        self.pending.set(pending)
        for name, ok in providers.items():
            self.up.labels(name).set(1.0 if ok else 0.0)

    async def run(self, interval: float = 1.0) -> None:
        """Refresh until cancelled (a task of the worker's services)."""
        while True:
            self.refresh()
            await asyncio.sleep(interval)

    def close(self) -> None:
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
