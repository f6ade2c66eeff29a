"""What the response cache adds to a call: an exact hit, a miss (lookup + store), per backend.

    .venv/bin/python bench/cache_cost.py [--n 2000] [--redis redis://127.0.0.1:6379/0]

A real gateway in this process (``httpx.ASGITransport``, so no sockets: what is left is
the gateway's own work) with the built-in mock provider as the upstream (it answers in
microseconds, in process). Sequential calls, one core, interaction logging off, for:

* ``no cache``: the plain call, the baseline;
* ``miss``: the cache selected, every prompt new (lookup, the upstream, then the store
  in the finish step);
* ``hit``: the same prompt again (lookup, decode, encode: no upstream);
* ``hit, streamed``: a hit replayed as an SSE stream (chunks built from the completion);

each with the in-process LRU and, with ``--redis``, Redis. Prints p50 / p99 wall time per
call, the difference of the medians to the baseline, and hits per second on one core.
A hit skips the upstream, so against a real provider (hundreds of ms) it is the whole
saving; these figures are what the cache costs the gateway itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(
    client: httpx.AsyncClient, n: int, body: Any, headers: dict[str, str], fresh: bool
) -> list[float]:
    out = []
    for _ in range(n):
        payload = body(uuid.uuid4().hex) if fresh else body("the same question")
        t0 = time.perf_counter()
        resp = await client.post("/v1/chat/completions", json=payload, headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text
    return out


async def run(n: int, redis_url: str | None) -> None:
    backends: list[tuple[str, dict[str, Any]]] = [("memory", {"backend": "memory"})]
    if redis_url:
        backends.append(("redis", {"backend": "redis", "redis_url": redis_url}))
    print(f"{'scenario':28} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'calls/s':>8}")
    for name, cache_settings in backends:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                env={},
                overrides={
                    "database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
                    "log_file": "none",
                    "log_interactions": False,
                    "auto_providers": False,
                    "provider_reload_interval": 0,
                    "limits_enabled": False,
                    "response_cache": cache_settings,
                    "redis_prefix": f"{{bench-{uuid.uuid4().hex}}}:",
                },
            )
            gateway = Gateway(settings, env={})
            await gateway.startup()
            key, _ = await create_key(gateway.services.sessions, "bench")
            auth = {"authorization": f"Bearer {key}"}
            cached = {**auth, "x-llmrelay-config": '{"cache": {"ttl": 600}}'}

            def chat(text: str) -> dict[str, Any]:
                return {"model": "mock/echo", "messages": [{"role": "user", "content": text}]}

            def streamed(text: str) -> dict[str, Any]:
                return {**chat(text), "stream": True}

            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                await _timed(client, 200, chat, auth, fresh=True)  # warm-up
                base = await _timed(client, n, chat, auth, fresh=True)
                rows = [
                    ("no cache", base),
                    ("miss (lookup + store)", await _timed(client, n, chat, cached, True)),
                    ("hit", await _timed(client, n, chat, cached, False)),
                    ("hit, streamed", await _timed(client, n, streamed, cached, False)),
                ]
            await gateway.shutdown()
        p50_base = statistics.median(base)
        for label, values in rows:
            p50 = statistics.median(values)
            print(
                f"{name + ': ' + label:28} {p50:8.3f} {_pct(values, 0.99):8.3f} "
                f"{p50 - p50_base:+8.3f} {1000 / statistics.fmean(values):8.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.redis))


if __name__ == "__main__":
    main()
