"""What stalls the event loop under sequential calls: garbage collection, the log writer.

    taskset -c 0 .venv/bin/python bench/loop_stalls.py --n 5000 [--no-freeze]
        [--gc-threshold 700,10,10] [--switch-interval 0.005] [--admin-warm]

A real gateway in this process (``httpx.ASGITransport``, no sockets) with the built-in
mock provider as the upstream, interaction logging and the SQLite log writer on (a file
interaction log, as the bench config ships), sequential calls. Three recorders run
beside the calls:

- every call's wall time and the loop thread's CPU time during it (``thread_time``:
  what a busy machine inflates least; a pause shows in it, a preemption does not);
- ``gc.callbacks``: each collection's generation and loop-thread CPU time;
- the writer's loop-thread steps: ``LogWriter._spool_fresh`` (encode, interaction log
  lines, spool write) and the row building of ``LogWriter._write``, timed by wrapping
  them (the spool step's wall time includes its ``fsync`` in a thread);
- every loop step (a callback or one step of a task, what runs without yielding) over
  0.5 ms of loop-thread CPU, by task name: the longest of these is the stall a request
  waiting behind it sees.

Prints the call percentiles, then per stall source the count, total and longest pause,
so a tail can be matched to its cause, and the objects each collector generation held at
the end (what a collection of it walks). ``--no-freeze`` skips what the server does after
start-up (``llmrelay.gc_tuning``: ``gc.freeze()``, the collector's thresholds, the
interpreter's switch interval), to compare; ``--gc-threshold`` and
``--switch-interval`` replace the tuned values to measure others; ``--admin-warm`` also
builds the admin API after the freeze, as ``llmrelay serve`` does (in a thread, aside,
then frozen too unless ``--no-freeze``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.gc_tuning import freeze_after, freeze_startup_heap
from llmrelay.governance.keys import create_key
from llmrelay.store import writer as writer_module


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pauses:
    def __init__(self) -> None:
        self.by_source: dict[str, list[float]] = {}
        #: Recording (the measured calls only: not the warm-up, not the shutdown's flush).
        self.on = False

    def add(self, source: str, ms: float) -> None:
        if self.on:
            self.by_source.setdefault(source, []).append(ms)


def _watch_gc(pauses: Pauses) -> None:
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            pauses.add(f"gc gen{info['generation']}", (time.thread_time() - started[0]) * 1000)

    gc.callbacks.append(callback)


def _watch_steps(pauses: Pauses, over_ms: float = 0.5) -> None:
    """Every loop step (one callback or task step: what runs without yielding) longer
    than ``over_ms`` of loop-thread CPU, by the task's name (or the callback)."""
    run = asyncio.events.Handle._run

    def timed(self: Any) -> None:
        t0 = time.thread_time()
        run(self)
        took = (time.thread_time() - t0) * 1000
        if took > over_ms:
            owner = getattr(self._callback, "__self__", None)
            name = owner.get_name() if isinstance(owner, asyncio.Task) else "callback"
            if name.startswith("Task-") and isinstance(owner, asyncio.Task):
                # Unnamed: the calls' own tasks, and the writer's batch writes, each run
                # as a task of its own (store/deadline.py's within): named by coroutine.
                coro = owner.get_coro()
                name = f"task {getattr(coro, '__qualname__', type(coro).__name__)}"
            pauses.add(f"loop step > {over_ms} ms: {name}", took)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def _watch_writer(pauses: Pauses) -> None:
    spool_fresh = writer_module.LogWriter._spool_fresh

    async def timed_spool(self: Any) -> None:
        # The synchronous part runs before the fsync is handed to a thread.
        t0 = time.perf_counter()
        await spool_fresh(self)
        pauses.add("writer spool step (incl. fsync wait)", (time.perf_counter() - t0) * 1000)

    for name in ("request_values", "response_values"):
        original = getattr(writer_module, name)

        def timed(it: Any, bodies: bool, _f: Any = original, _n: str = name) -> Any:
            t0 = time.thread_time()
            row = _f(it, bodies)
            pauses.add(f"writer {_n} (per row)", (time.thread_time() - t0) * 1000)
            return row

        setattr(writer_module, name, timed)
    writer_module.LogWriter._spool_fresh = timed_spool  # type: ignore[method-assign]


async def run(
    n: int,
    freeze: bool,
    threshold: tuple[int, ...] | None,
    switch: float | None,
    admin_warm: bool,
) -> None:
    pauses = Pauses()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            env={},
            overrides={
                "database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
                "log_file": str(Path(tmp) / "interactions.log"),
                "log_interactions": True,
                "auto_providers": False,
                "provider_reload_interval": 0,
            },
        )
        gateway = Gateway(settings, env={})
        await gateway.startup()
        if freeze:
            freeze_startup_heap()
        if threshold is not None:
            gc.set_threshold(*threshold)
        if switch is not None:
            sys.setswitchinterval(switch)
        if admin_warm:  # as serve does: built aside, then frozen too (gc_tuning)
            warming = gateway.admin.warm()
            if freeze:
                freeze_after(warming)
            if warming is not None:
                await warming
                await asyncio.sleep(0)  # the freeze, a done callback of the build
        _watch_writer(pauses)
        key, _ = await create_key(gateway.services.sessions, "bench")
        auth = {"authorization": f"Bearer {key}"}
        body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hello"}]}
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            for _ in range(300):  # warm-up
                await client.post("/v1/chat/completions", json=body, headers=auth)
            _watch_gc(pauses)
            _watch_steps(pauses)
            calls, cpu = [], []
            pauses.on = True
            for _ in range(n):
                t0, c0 = time.perf_counter(), time.thread_time()
                resp = await client.post("/v1/chat/completions", json=body, headers=auth)
                calls.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
                assert resp.status_code == 200, resp.text
            pauses.on = False
        stats = gateway.services.writer.stats_dict()
        held = [len(gc.get_objects(g)) for g in range(3)]
        await gateway.shutdown()
    print(
        f"gc.freeze after start: {'yes' if freeze else 'no'}; thresholds {gc.get_threshold()}; "
        f"switch interval {sys.getswitchinterval() * 1000:g} ms; admin built: "
        f"{'yes' if admin_warm else 'no'}; {n} sequential calls"
    )
    print(
        f"objects the collector tracks at the end, gen0/1/2: {held[0]}/{held[1]}/{held[2]}; "
        f"frozen: {gc.get_freeze_count()}"
    )
    print(
        f"call ms p50 {statistics.median(calls):.3f}  p90 {_pct(calls, 0.9):.3f}  "
        f"p99 {_pct(calls, 0.99):.3f}  max {max(calls):.3f}"
    )
    print(
        f"call loop-thread CPU ms p50 {statistics.median(cpu):.3f}  p90 {_pct(cpu, 0.9):.3f}  "
        f"p99 {_pct(cpu, 0.99):.3f}  max {max(cpu):.3f}"
    )
    print(f"{'stall source':40} {'count':>7} {'total ms':>9} {'p99 ms':>8} {'max ms':>8}")
    for source, values in sorted(pauses.by_source.items()):
        print(
            f"{source:40} {len(values):7} {sum(values):9.1f} {_pct(values, 0.99):8.3f} "
            f"{max(values):8.3f}"
        )
    print(f"writer: written {stats.get('written')}, dropped {stats.get('dropped')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--no-freeze", action="store_true")
    parser.add_argument("--gc-threshold", help="gc.set_threshold values, e.g. 700,10,10")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval, s")
    parser.add_argument("--admin-warm", action="store_true")
    args = parser.parse_args()
    threshold = tuple(int(v) for v in args.gc_threshold.split(",")) if args.gc_threshold else None
    asyncio.run(run(args.n, not args.no_freeze, threshold, args.switch_interval, args.admin_warm))


if __name__ == "__main__":
    main()
