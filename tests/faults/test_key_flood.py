"""A flood of random API keys against a running gateway on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import orjson

from llmrelay.governance.keys import generate_key
from tests.gateway_proc import GatewayProcess

BODY = orjson.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})


def chat_ok(client: httpx.Client, gw: GatewayProcess, key: str) -> None:
    r = client.post(
        gw.base_url + "/chat/completions",
        content=BODY,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def flood(
    gw: GatewayProcess, stop: threading.Event, statuses: Counter[int], concurrency: int = 48
) -> None:
    """Random well-formed keys, ``concurrency`` at a time, until ``stop`` is set."""

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            r = await client.post(
                gw.base_url + "/chat/completions",
                content=BODY,
                headers={"authorization": f"Bearer {generate_key()}"},
            )
            statuses[r.status_code] += 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))

    asyncio.run(main())


def test_random_key_flood(
    start_gateway: Callable[..., GatewayProcess], make_postgres_db: Callable[[], str]
) -> None:
    """Flood of random API keys -> valid key stays 200, flood gets 401/503 only

    48 concurrent callers with fresh random keys (the worst case: nothing to cache)
    against a gateway whose valid key must be re-read from the database every 50 ms.
    Lookups of uncached keys are bounded (1 at once here), so the flood is answered
    401 or a fast 503 and the valid key's refreshes never queue behind it. Counted, not
    timed: a refresh that queued for a lookup slot would wait at most 5 ms and then be
    refused with the flood's 503, so thirty 200s in a row, each refreshing from the
    database while the flood's answers keep arriving, show it never queued.
    """
    gw = start_gateway(
        {
            "database_url": make_postgres_db(),
            "key_cache_ttl": 0.05,
            # One slot and a 5 ms wait: 48 callers overrun it however fast the
            # database answers (2 slots and 50 ms drained in time on a quiet machine).
            "key_lookup_concurrency": 1,
            "key_lookup_wait": 0.005,
        }
    )
    valid = gw.create_key("valid")
    with httpx.Client() as client:
        for _ in range(5):
            chat_ok(client, gw, valid)
        stop, statuses = threading.Event(), Counter[int]()
        thread = threading.Thread(target=flood, args=(gw, stop, statuses))
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while sum(statuses.values()) < 200:  # the flood is in full swing
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.05)
            flooded = sum(statuses.values())
            for _ in range(30):
                chat_ok(client, gw, valid)
                time.sleep(0.06)  # past key_cache_ttl: the next call refreshes the key
            flooded_during = sum(statuses.values()) - flooded
        finally:
            stop.set()
            thread.join(60)
        detail = client.get(gw.url + "/health/ready", timeout=30).json()
        exposition = client.get(gw.url + "/metrics", timeout=30).text
    assert set(statuses) <= {401, 503}, statuses
    assert statuses[503] > 0, "the lookup bound never engaged"
    assert flooded_during > 30, "the flood did not run alongside the valid key's calls"
    keys = detail["keys"]
    assert keys["stale_served"] == 0  # each refresh was a real read, not the stale cache
    assert keys["busy_rejected"] == statuses[503]
    assert keys["queries"] < sum(statuses.values()) + 100
    assert f"llmrelay_key_lookups_rejected_total {float(statuses[503])}" in exposition
