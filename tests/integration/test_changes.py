"""Run-time changes reach every running instance (changes.py).

- Two processes on one PostgreSQL and Redis, with every poll set to an hour: a route
  config set through the CLI (which publishes on Redis) is served by both within a
  couple of seconds, so only the pub/sub message can explain it.
- One process without Redis polling the database every second: an alias inserted by
  plain SQL (as seed 000's setup script provisions them) starts working, and stops
  when the row is disabled.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import MockUpstream
from llmrelay.store.database import migrate_url
from tests.gateway_proc import GatewayProcess
from tests.services import REDIS_HOST, REDIS_PORT


def provider_config(upstream: MockUpstream) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-key-changes",
            }
        ]
    }


def route(model: str) -> dict[str, Any]:
    return {"strategy": "single", "targets": [{"provider": "up", "model": model}]}


def call(gw: GatewayProcess, key: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def db_exec(gw: GatewayProcess, sql: str) -> None:
    """Run one statement and commit it (plain SQL, as an operator's script would)."""
    from sqlalchemy import text

    from llmrelay.store import database

    async def run() -> None:
        engine = database.create_engine(gw.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join()


def seconds_until(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def served_by(gw: GatewayProcess, key: str, model: str, upstream_model: str) -> Callable[[], bool]:
    def check() -> bool:
        r = call(gw, key, model)
        return r.status_code == 200 and r.json()["model"] == upstream_model

    return check


@pytest.fixture(scope="module")
def pair(
    upstream: MockUpstream,
    make_postgres_db: Callable[[], str],
    redis_server: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    config = provider_config(upstream)
    config.update(
        database_url=make_postgres_db(),
        redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        redis_prefix=f"{{changes-{uuid.uuid4().hex}}}:",
        redis_timeout=2.0,
        # Nothing is re-read on a timer in this test: only a message can explain a change.
        provider_reload_interval=3600,
        routing={"config_cache_ttl": 3600},
    )
    thread = threading.Thread(target=asyncio.run, args=(migrate_url(config["database_url"]),))
    thread.start()
    thread.join()
    procs = [GatewayProcess(tmp_path_factory.mktemp(f"changes-{n}"), config) for n in "ab"]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(GatewayProcess.start, procs)
    yield first, second
    first.stop()
    second.stop()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_route_config_set_by_the_cli_reaches_both_instances_through_redis(
    pair: tuple[GatewayProcess, GatewayProcess], tmp_path: Any
) -> None:
    a, b = pair
    key = a.create_key("changes-redis")
    for gw in pair:
        ready = httpx.get(gw.url + "/health/ready", timeout=5).json()
        assert ready["changes"]["redis"] is True
        seconds_until(
            lambda gw=gw: httpx.get(gw.url + "/health/ready", timeout=5).json()["changes"][
                "listening"
            ],
            10,
        )
        assert call(gw, key, "team-route").status_code == 400  # unknown model so far
    source = tmp_path / "route.json"
    source.write_text(json.dumps(route("routed-by-redis")))
    done = a.cli("route-configs", "set", "team-route", "--file", str(source))
    assert done.returncode == 0, done.stderr
    for gw in pair:
        took = seconds_until(served_by(gw, key, "team-route", "routed-by-redis"), 5)
        assert took < 5
    source.write_text(json.dumps(route("second-version")))
    assert a.cli("route-configs", "set", "team-route", "--file", str(source)).returncode == 0
    seconds_until(served_by(b, key, "team-route", "second-version"), 5)
    assert a.cli("route-configs", "delete", "team-route").returncode == 0
    seconds_until(lambda: call(b, key, "team-route").status_code == 400, 5)
    ready = httpx.get(b.url + "/health/ready", timeout=5).json()["changes"]
    assert ready["received"] >= 3 and ready["polls"] == 1


@pytest.fixture(scope="module")
def polling(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = provider_config(upstream)
    config.update(provider_reload_interval=1)
    gw = GatewayProcess(tmp_path_factory.mktemp("changes-poll"), config).start()
    yield gw
    gw.stop()


def test_an_alias_inserted_by_sql_is_picked_up_by_the_poll(polling: GatewayProcess) -> None:
    key = polling.create_key("changes-poll")
    assert call(polling, key, "house-model").status_code == 400
    db_exec(
        polling,
        "INSERT INTO model_aliases (id, alias, target, enabled, created_at) "
        "VALUES ('a1', 'house-model', 'up/aliased-by-sql', 1, CURRENT_TIMESTAMP)",
    )
    took = seconds_until(served_by(polling, key, "house-model", "aliased-by-sql"), 10)
    assert took < 10
    db_exec(polling, "UPDATE model_aliases SET enabled = 0 WHERE id = 'a1'")
    seconds_until(lambda: call(polling, key, "house-model").status_code == 400, 10)
