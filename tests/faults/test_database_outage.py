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
#: Client timeouts of the calls made during an outage: hang guards, generous for a loaded
#: two-core machine (the designed bound is one DB_TIMEOUT at most).
FAST = DB_TIMEOUT + 4.0
RECOVERY = 45.0


def chat(gw: GatewayProcess, key: str, timeout: float = 30) -> httpx.Response:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "still there?"}]}
    return httpx.post(
        gw.base_url + "/chat/completions",
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {key}"},
        timeout=timeout,
    )


def ready(gw: GatewayProcess, timeout: float = 30) -> httpx.Response:
    return httpx.get(gw.url + "/health/ready", timeout=timeout)


def start(
    start_gateway: Callable[..., GatewayProcess], pg: PrivatePostgres
) -> tuple[GatewayProcess, str, str]:
    """A gateway that has seen two keys; the budgeted one's spend was never read."""
    gw = start_gateway(
        {
            "database_url": pg.url,
            "key_cache_ttl": 0.2,
            "key_stale_ttl": 120,
            "database_timeout": DB_TIMEOUT,
        }
    )
    known = gw.create_key("known")
    assert chat(gw, known).status_code == 200
    budgeted = gw.create_key("budgeted", budget=Decimal("5"))
    r = httpx.post(
        gw.base_url + "/chat/completions",
        content=b"{}",
        timeout=30,
        headers={"authorization": f"Bearer {budgeted}"},
    )
    assert r.status_code == 400  # authenticated (cached), rejected before admission
    return gw, known, budgeted


def assert_outage_behaviour(gw: GatewayProcess, known: str, budgeted: str) -> None:
    """Known key 200 from the stale cache; unknown key a fast 503; readiness answers.

    No call is timed: each has a client timeout of ``FAST`` (a hang guard several times
    the designed bound), and "the known key does not wait on the database every time"
    is counted from the key store's own counters (lookups that failed vs calls served).
    """
    time.sleep(0.5)  # past key_cache_ttl: every call below needs the database or the cache
    before = ready(gw, FAST).json()["keys"]
    served = 10
    for _ in range(served):
        r = chat(gw, known, FAST)
        assert r.status_code == 200, r.text
    during = ready(gw, FAST).json()["keys"]
    assert during["stale_served"] - before["stale_served"] >= served
    # While the database counts as down (a second after each failure) the stale record
    # is served without a lookup: most of the calls did not wait on the database.
    assert during["database_failures"] - before["database_failures"] <= served // 2, (
        before,
        during,
    )
    for _ in range(3):
        r = chat(gw, generate_key(), FAST)
        assert r.status_code == 503, r.text
        err: dict[str, Any] = r.json()["error"]
        assert err["code"] == "key_store_unavailable"
        assert "database is unavailable" in err["message"] and err["type"]
        assert r.headers["retry-after"]
    # A budget whose spend was never read cannot be admitted against a guess of zero.
    r = chat(gw, budgeted, FAST)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "budget_state_unavailable"
    r = ready(gw, FAST)
    assert r.status_code == 503, r.status_code
    body = r.json()
    assert body["status"] == "not_ready" and body["database"]["ok"] is False
    r = httpx.get(gw.url + "/api/db-stats", timeout=FAST)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "database_unavailable"
    assert body["keys"]["stale_served"] >= served


def assert_recovers(gw: GatewayProcess, known: str, budgeted: str) -> None:
    deadline = time.monotonic() + RECOVERY
    while ready(gw).status_code != 200:
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
    assert ready(gw).json()["keys"]["database_down"] is False


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
