"""Run-time changes and seed 002's keys.json, in the test's own process.

The socket tiers prove these end to end (tests/integration/test_changes.py,
test_admin_scaleout.py, tests/admin/test_keys_file.py) on real `llmrelay serve`
processes; here two applications share one SQLite database (and Redis) in this process,
so the same paths are also exercised where coverage is measured, and their refusals
(malformed messages, bad files) can be checked one by one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from llmrelay.changes import ChangeFeed, publish
from llmrelay.config_error import ConfigError
from llmrelay.mock_upstream import MockUpstream
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config
from tests.services import REDIS_HOST, REDIS_PORT

MASTER = "sk-master-runtime-changes-2718"
REDIS = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "not seen in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pair(
    upstream: MockUpstream, redis_server: None, tmp_path: Path
) -> AsyncIterator[tuple[InProcessGateway, InProcessGateway]]:
    config = {
        **base_config(upstream),
        "master_key": MASTER,
        "redis_url": REDIS,
        "redis_prefix": f"{{inproc-changes-{uuid.uuid4().hex}}}:",
        "provider_reload_interval": 3600,
        "routing": {"config_cache_ttl": 3600},
    }
    first = await InProcessGateway(tmp_path / "a", config).start()
    second_config = {**config, "database_url": first.database_url}
    second = InProcessGateway(tmp_path / "b", second_config)
    await second.start()
    yield first, second
    await second.stop()
    await first.stop()


@pytest.mark.redis
async def test_an_admin_change_on_one_app_reaches_the_other(
    pair: tuple[InProcessGateway, InProcessGateway],
) -> None:
    a, b = pair
    feed_b = b.app.services.changes
    await until(lambda: _true(feed_b.listening))
    key = await a.create_key("runtime-changes")
    body = {"model": "house", "messages": [{"role": "user", "content": "hi"}]}
    assert (await b.post("/v1/chat/completions", body, key)).status_code == 400
    admin = {"authorization": f"Bearer {MASTER}"}
    made = await a.client.post(
        "/admin/aliases", json={"alias": "house", "target": "up/via-feed"}, headers=admin
    )
    assert made.status_code in (200, 201), made.text

    async def served() -> bool:
        r = await b.post("/v1/chat/completions", body, key)
        return r.status_code == 200 and r.json()["model"] == "via-feed"

    await until(served, 5)
    assert feed_b.status()["received"] >= 1
    # The CLI's way (no feed of its own) reaches both; junk on the channel changes nothing.
    client = feed_b._publisher
    for junk in (b"not json", b"[1]", b'{"kind": "nonsense"}', b"x" * 600):
        await client.publish(feed_b.channel, junk)
    before = feed_b.status()["received"]
    assert await publish(REDIS, feed_b.channel.removesuffix("changes"), "route_configs")
    await until(lambda: _true(feed_b.status()["received"] == before + 1))
    assert not await publish(None, "", "aliases")  # no Redis: the poll will do


async def test_a_change_made_by_sql_is_found_by_the_poll(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    gw = await InProcessGateway(tmp_path / "poll", base_config(upstream)).start()
    try:
        feed = ChangeFeed(gw.app.services.sessions, interval=0.1, timeout=2.0)
        seen: list[str] = []

        async def noted() -> None:
            seen.append("aliases")

        async def broken() -> None:
            raise RuntimeError("a handler failing does not stop the others")

        feed.on("aliases", broken)
        feed.on("aliases", noted)
        with pytest.raises(ValueError, match="unknown change kind"):
            feed.on("everything", noted)
        await feed.start()
        await gw.query("SELECT 1")
        async with gw._engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(
                text(
                    "INSERT INTO model_aliases (id, alias, target, enabled, created_at) "
                    "VALUES ('p1', 'polled', 'up/x', 1, CURRENT_TIMESTAMP)"
                )
            )
        await until(lambda: _true(seen == ["aliases"]), 5)
        assert feed.status()["errors"] >= 1 and feed.status()["polls"] >= 2
        await feed.notify("aliases")  # applied here; no Redis to publish on
        assert seen == ["aliases", "aliases"]
        await feed.close()
    finally:
        await gw.stop()


async def test_keys_json_is_imported_at_start_and_a_bad_one_refused(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    real = "sk-real-inprocess-key-0001"
    path.write_text(
        json.dumps({"virtual_keys": {"vk_inproc_user": {"provider": "up", "api_key": real}}})
    )
    gw = await InProcessGateway(
        tmp_path / "keys", {**base_config(upstream), "keys_file": str(path)}
    ).start()
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        r = await gw.post("/v1/chat/completions", body, "vk_inproc_user")
        assert r.status_code == 200, r.text
        assert upstream.last_request.headers["authorization"] == f"Bearer {real}"
    finally:
        await gw.stop()
    path.write_text(json.dumps({"virtual_keys": {"vk_inproc_bad": {"provider": "nowhere"}}}))
    bad = InProcessGateway(tmp_path / "bad", {**base_config(upstream), "keys_file": str(path)})
    with pytest.raises((ConfigError, RuntimeError)) as caught:
        await bad.start()
    assert "virtual_keys entry 1" in str(caught.value)
    await bad.stop()


async def _true(value: object) -> bool:
    return bool(value)
