"""PostgreSQL stopped or hung under a running gateway: keys, readiness and recovery.

The gateway's database is a PostgreSQL of the test's own. Keys are created and used
once first (so the gateway has seen them); then the server is stopped (connections
refused) or paused with SIGSTOP (connections hang). Rows written during the outage are
another guarantee's business (the spool); nothing here asserts on rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson

from llmrelay.governance.keys import generate_key
from tests.gateway_proc import GatewayProcess
from tests.private_services import PrivatePostgres

DB_TIMEOUT = 1.0
#: Generous bounds for a loaded two-core machine; the designed values are far below.
FAST = DB_TIMEOUT + 4.0
RECOVERY = 45.0


def chat(gw: GatewayProcess, key: str) -> httpx.Response:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "still there?"}]}
    return httpx.post(gw.base_url + "/chat/completions", content=orjson.dumps(body),
                      headers={"authorization": f"Bearer {key}"}, timeout=30)


def timed(fn: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def ready(gw: GatewayProcess) -> tuple[httpx.Response, float]:
    return timed(lambda: httpx.get(gw.url + "/health/ready", timeout=30))


def start(start_gateway: Callable[..., GatewayProcess], pg: PrivatePostgres
          ) -> tuple[GatewayProcess, str, str]:
    """A gateway that has seen two keys; the budgeted one's spend was never read."""
    gw = start_gateway({"database_url": pg.url, "key_cache_ttl": 0.2,
                        "key_stale_ttl": 120, "database_timeout": DB_TIMEOUT})
    known = gw.create_key("known")
    assert chat(gw, known).status_code == 200
    budgeted = gw.create_key("budgeted", budget=Decimal("5"))
    r = httpx.post(gw.base_url + "/chat/completions", content=b"{}", timeout=30,
                   headers={"authorization": f"Bearer {budgeted}"})
    assert r.status_code == 400  # authenticated (cached), rejected before admission
    return gw, known, budgeted


def assert_outage_behaviour(gw: GatewayProcess, known: str, budgeted: str) -> None:
    """Known key 200 from the stale cache; unknown key a fast 503; readiness answers."""
    time.sleep(0.5)  # past key_cache_ttl: every call below needs the database or the cache
    deadline = time.monotonic() + 3
    served = 0
    while time.monotonic() < deadline:
        r, seconds = timed(lambda: chat(gw, known))
        assert r.status_code == 200, r.text
        # At most one lookup timeout, even when the hung connection is slow to close.
        assert seconds < DB_TIMEOUT + 1.5, f"a known key waited {seconds:.1f}s"
        served += 1
    assert served >= 3
    for _ in range(3):
        r, seconds = timed(lambda: chat(gw, generate_key()))
        assert r.status_code == 503, r.text
        assert seconds < FAST, f"an unknown key waited {seconds:.1f}s"
        err: dict[str, Any] = r.json()["error"]
        assert err["code"] == "key_store_unavailable"
        assert "database is unavailable" in err["message"] and err["type"]
        assert r.headers["retry-after"]
    # A budget whose spend was never read cannot be admitted against a guess of zero.
    r, seconds = timed(lambda: chat(gw, budgeted))
    assert r.status_code == 503 and seconds < FAST, (r.text, seconds)
    assert r.json()["error"]["code"] == "budget_state_unavailable"
    r, seconds = ready(gw)
    assert r.status_code == 503 and seconds < FAST, (r.status_code, seconds)
    body = r.json()
    assert body["status"] == "not_ready" and body["database"]["ok"] is False
    r, seconds = timed(lambda: httpx.get(gw.url + "/api/db-stats", timeout=30))
    assert r.status_code == 503 and seconds < FAST, (r.text, seconds)
    assert r.json()["error"]["code"] == "database_unavailable"
    assert body["keys"]["stale_served"] >= served


def assert_recovers(gw: GatewayProcess, known: str, budgeted: str) -> None:
    deadline = time.monotonic() + RECOVERY
    while ready(gw)[0].status_code != 200:
        assert time.monotonic() < deadline, "readiness did not recover"
        time.sleep(0.2)
    fresh = gw.create_key(f"after-{time.monotonic_ns()}")
    deadline = time.monotonic() + RECOVERY
    while True:  # the database counts as down for a moment after its last failure
        r = chat(gw, fresh)
        if r.status_code == 200:
            break
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.2)
    assert chat(gw, known).status_code == 200
    assert chat(gw, budgeted).status_code == 200
    assert ready(gw)[0].json()["keys"]["database_down"] is False


def test_postgres_stopped(
    start_gateway: Callable[..., GatewayProcess], private_postgres: PrivatePostgres
) -> None:
    """PostgreSQL stopped -> known keys 200 (stale cache), unknown fast 503, ready 503, recovers

    Connections are refused; after ``start()`` readiness, new keys and old keys recover.
    """
    gw, known, budgeted = start(start_gateway, private_postgres)
    private_postgres.stop()
    assert_outage_behaviour(gw, known, budgeted)
    private_postgres.start()
    assert_recovers(gw, known, budgeted)


def test_postgres_hung(
    start_gateway: Callable[..., GatewayProcess], private_postgres: PrivatePostgres
) -> None:
    """PostgreSQL hung (SIGSTOP) -> known keys 200, unknown fast 503, ready 503 in time, recovers

    Connections hang: every database wait is cut at ``database_timeout``; after SIGCONT
    readiness, new keys and old keys recover.
    """
    gw, known, budgeted = start(start_gateway, private_postgres)
    private_postgres.pause()
    try:
        assert_outage_behaviour(gw, known, budgeted)
    finally:
        private_postgres.resume()
    assert_recovers(gw, known, budgeted)
