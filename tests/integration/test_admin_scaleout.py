"""The admin API on one instance, its effect on another (PostgreSQL + Redis shared).

Issue 12's promise: a key created, rotated or disabled and a provider added through one
instance take effect on the other within the stated time: a key within
``key_cache_ttl`` (1 s), a provider within about a second through the Redis change
feed. Every timer that could also explain a change (provider polls, route-config
refreshes) is set to an hour here.
"""

from __future__ import annotations

import asyncio
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

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MASTER = "sk-master-scaleout-admin-7788"
Pair = tuple[GatewayProcess, GatewayProcess]


@pytest.fixture(scope="module")
def pair(
    upstream: MockUpstream,
    make_postgres_db: Callable[[], str],
    redis_server: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    config: dict[str, Any] = {
        "master_key": MASTER,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-key-admin-scaleout",
            }
        ],
        "database_url": make_postgres_db(),
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "redis_prefix": f"{{admin-scaleout-{uuid.uuid4().hex}}}:",
        "redis_timeout": 2.0,
        "provider_reload_interval": 3600,
        "routing": {"config_cache_ttl": 3600},
    }
    thread = threading.Thread(target=asyncio.run, args=(migrate_url(config["database_url"]),))
    thread.start()
    thread.join()
    procs = [GatewayProcess(tmp_path_factory.mktemp(f"admin-{n}"), config) for n in "ab"]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(GatewayProcess.start, procs)
    for gw in (first, second):  # both listening for changes before any is made
        within(lambda gw=gw: ready(gw)["changes"]["listening"], 10)
    yield first, second
    first.stop()
    second.stop()


def ready(gw: GatewayProcess) -> dict[str, Any]:
    r = httpx.get(
        gw.url + "/health/ready", headers={"authorization": f"Bearer {MASTER}"}, timeout=5
    )
    return dict(r.json())


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        gw.url + path,
        json=body,
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=15,
    )


def chat(gw: GatewayProcess, key: str, model: str = "up/gpt-4o-mini") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def within(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_key_made_rotated_and_disabled_on_one_instance_acts_on_the_other(pair: Pair) -> None:
    a, b = pair
    made = admin(a, "POST", "/admin/virtual-keys", {"name": "scaleout-key", "rate_limit": 100})
    assert made.status_code in (200, 201), made.text
    key, key_id = made.json()["virtual_key"], made.json()["id"]
    assert chat(b, key).status_code == 200  # the other instance knows it at once
    rotated = admin(a, "PUT", f"/admin/virtual-keys/{key_id}/rotate", {})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["virtual_key"]
    assert chat(b, new).status_code == 200
    # The old secret was cached by b a moment ago: refused within key_cache_ttl (1 s).
    took = within(lambda: chat(b, key).status_code == 401, 3)
    assert took < 2.5
    off = admin(a, "PATCH", f"/admin/virtual-keys/{key_id}", {"status": "disabled"})
    assert off.status_code == 200, off.text
    took = within(lambda: chat(b, new).status_code == 401, 3)
    assert took < 2.5


def test_a_provider_added_on_one_instance_serves_on_the_other(
    pair: Pair, upstream: MockUpstream
) -> None:
    a, b = pair
    made = admin(a, "POST", "/admin/virtual-keys", {"name": "scaleout-provider-key"})
    key = made.json()["virtual_key"]
    assert chat(b, key, "late/gpt-4o-mini").status_code in (400, 404)
    added = admin(
        a,
        "POST",
        "/admin/providers",
        {
            "name": "late",
            "type": "openai_compatible",
            "base_url": upstream.base_url,
            "api_key": "late-provider-secret-9911",
        },
    )
    assert added.status_code in (200, 201), added.text
    assert "late-provider-secret-9911" not in added.text
    assert chat(a, key, "late/gpt-4o-mini").status_code == 200  # at once where it was made
    took = within(lambda: chat(b, key, "late/gpt-4o-mini").status_code == 200, 5)
    assert took < 3
    assert ready(b)["changes"]["received"] >= 1
    gone = admin(a, "DELETE", "/admin/providers/late")
    assert gone.status_code in (200, 204), gone.text
    within(lambda: chat(b, key, "late/gpt-4o-mini").status_code in (400, 404), 5)
