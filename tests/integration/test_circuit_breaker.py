"""Circuit breaking through real gateways: in process, and shared by two through Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.routing_env import post, providers, seed_mock_fixtures

REDIS_URL = "redis://127.0.0.1:6379/0"
FALLBACK = {
    "strategy": "fallback",
    "targets": [
        {"provider": "openai", "model": "brk"},
        {"provider": "anthropic", "model": "spare"},
    ],
}
# The cooldown leaves room for a loaded CI machine between tripping and checking.
BREAKER = {"failure_threshold": 3, "window": 30, "cooldown": 2.0}


mocks, fresh = seed_mock_fixtures()


def config(mocks: list[MockUpstream]) -> dict[str, Any]:
    return {"providers": providers(*mocks), "routing": {"circuit_breaker": BREAKER}}


def circuits(gw: GatewayProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(gw.url + "/health/ready").json()
    return dict(body["circuits"])


def trip(gw: GatewayProcess, key: str, a: MockUpstream) -> None:
    a.script(*[Behaviour(status=500)] * 3)
    for _ in range(3):
        r = post(gw, key, config=FALLBACK)
        assert r.status_code == 200 and r.headers["x-llmrelay-provider"] == "anthropic"
        assert r.headers["x-llmrelay-attempts"] == "2"


@pytest.fixture(scope="module")
def local_gw(
    mocks: list[MockUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("breaker"), config(mocks)).start()
    yield proc
    proc.stop()


def test_breaker_opens_skips_then_probes_and_closes(
    local_gw: GatewayProcess, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    gw = local_gw
    key = gw.create_key("brk")
    trip(gw, key, a)
    assert circuits(gw)["openai/brk"]["state"] == "open"
    seen = len(a.requests)
    r = post(gw, key, config=FALLBACK)
    assert r.status_code == 200 and r.headers["x-llmrelay-provider"] == "anthropic"
    assert r.headers["x-llmrelay-attempts"] == "1"  # openai skipped without a call
    assert len(a.requests) == seen
    # every target cooling down: an immediate 503, and no client retries on top
    b.script(*[Behaviour(status=500)] * 3)
    for _ in range(3):
        post(gw, key, config={"provider": "anthropic", "model": "spare"})
    r = post(gw, key, config=FALLBACK)
    assert r.status_code == 503 and r.json()["error"]["code"] == "circuit_open"
    assert r.headers["x-should-retry"] == "false" and int(r.headers["retry-after"]) >= 1
    # a direct call (no config) still reaches the provider: only routing skips
    direct = post(
        gw, key, {"model": "anthropic/spare", "messages": [{"role": "user", "content": "x"}]}
    )
    assert direct.status_code == 200
    time.sleep(2.1)  # cooldown over: the next call probes openai, and it is healthy now
    r = post(gw, key, config=FALLBACK)
    assert r.status_code == 200 and r.headers["x-llmrelay-provider"] == "openai"
    state = circuits(gw)["openai/brk"]
    assert state["state"] == "closed" and state["times_opened"] == 1


def test_client_errors_do_not_trip_the_breaker(
    local_gw: GatewayProcess, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    key = local_gw.create_key("brk4xx")
    fallback = {
        "strategy": "fallback",
        "targets": [
            {"provider": "openai", "model": "brk4xx"},
            {"provider": "anthropic", "model": "s"},
        ],
    }
    a.script(*[Behaviour(status=400)] * 4)
    for _ in range(4):
        r = post(local_gw, key, config=fallback)
        assert r.status_code == 200 and r.headers["x-llmrelay-attempts"] == "2"
    assert len(a.requests) == 4
    assert circuits(local_gw).get("openai/brk4xx", {"state": "closed"})["state"] == "closed"


@pytest.mark.redis
def test_breaker_state_is_shared_through_redis(
    redis_server: None,
    start_gateway: Callable[..., GatewayProcess],
    mocks: list[MockUpstream],
    tmp_path: Path,
) -> None:
    import redis

    a = mocks[0]
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    shared = {
        **config(mocks),
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
    }
    try:
        one, two = start_gateway(shared), start_gateway(shared)
        key = one.create_key("shared")
        trip(one, key, a)
        seen = len(a.requests)
        r = post(two, key, config=FALLBACK)  # the other instance skips openai too
        assert r.headers["x-llmrelay-provider"] == "anthropic"
        assert r.headers["x-llmrelay-attempts"] == "1" and len(a.requests) == seen
        assert circuits(two)["openai/brk"]["state"] == "open"
        time.sleep(2.1)
        r = post(two, key, config=FALLBACK)
        assert r.headers["x-llmrelay-provider"] == "openai"
        assert circuits(one)["openai/brk"]["state"] == "closed"
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        stale = list(client.scan_iter(match=prefix + "*"))
        if stale:
            client.delete(*stale)
        client.close()
