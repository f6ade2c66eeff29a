"""The response cache in Redis: two gateway processes share it; an outage is only misses.

Real ``llmrelay serve`` processes with the official ``openai`` SDK: an answer stored
through one instance is a hit on the other (one PostgreSQL holds the keys, so both see
the same key and so the same tenant scope); with the cache's Redis stopped every call
is still answered, as a miss, the failures counted; once it is back the cache works
again by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from llmrelay.store.database import migrate_url
from tests.gateway_proc import GatewayProcess
from tests.private_services import PrivateRedis
from tests.services import REDIS_HOST, REDIS_PORT


def _ask(
    client: openai.OpenAI, text: str, stream: bool = False, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    """``(answer text, x-llmrelay-cache)`` of one chat call."""
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="mock/echo", messages=messages, stream=True, extra_headers=headers
        ) as resp:
            parts = []
            for chunk in resp.parse():
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
            return "".join(parts), resp.headers["x-llmrelay-cache"]
    raw = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=messages, extra_headers=headers
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-llmrelay-cache"]


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _pair(
    database_url: str,
    start_gateway: Callable[..., GatewayProcess],
    name: str,
    **cache: Any,
) -> tuple[GatewayProcess, GatewayProcess, openai.OpenAI, openai.OpenAI]:
    """Two gateways on one migrated database and one Redis with the ``cache`` settings
    given (``plugins``, ``response_cache``), and a client on each for one key."""
    config: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "redis_prefix": f"{{{name}-{uuid.uuid4().hex}}}:",
        "redis_timeout": 2.0,
        "auto_providers": False,
        **cache,
    }
    thread = threading.Thread(target=asyncio.run, args=(migrate_url(database_url),))
    thread.start()
    thread.join()
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: start_gateway(config), range(2))
    key = first.create_key(f"cache-{name}")
    a = openai.OpenAI(base_url=first.base_url, api_key=key, max_retries=0)
    b = openai.OpenAI(base_url=second.base_url, api_key=key, max_retries=0)
    return first, second, a, b


def _semantic(sync_interval: float) -> dict[str, Any]:
    return {
        "plugins": {"cache": {"mode": "semantic", "embedding_model": "mock/bag-of-words"}},
        "response_cache": {"shared_vectors": True, "vector_sync_interval": sync_interval},
    }


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_share_one_cache(
    make_postgres_db: Callable[[], str],
    redis_server: None,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    _, second, a, b = _pair(
        make_postgres_db(), start_gateway, "shared", plugins={"cache": {"ttl": 600}}
    )
    text = f"shared {uuid.uuid4().hex}"
    assert _ask(a, text) == (text, "MISS")
    # Stored after the answer went out (the finish step): the other instance sees it soon.
    assert _until(lambda: _ask(b, text, stream=True) == (text, "HIT"))
    assert _ask(a, text, stream=True) == (text, "HIT")
    other = openai.OpenAI(
        base_url=second.base_url, api_key=second.create_key("other"), max_retries=0
    )
    assert _ask(other, text) == (text, "MISS")  # another key: another scope
    ready = a.get("/../health/ready", cast_to=object)
    assert isinstance(ready, dict) and ready["cache"]["backend"] == "redis"


@pytest.mark.redis
def test_redis_down_turns_the_cache_into_misses_and_it_recovers(
    private_redis: PrivateRedis,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    gw = start_gateway(
        {
            "response_cache": {"redis_url": private_redis.url},
            "redis_timeout": 0.2,
            "redis_retry_interval": 0.2,
            "plugins": {"cache": {}},
            "auto_providers": False,
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.create_key("outage"), max_retries=0)
    text = f"outage {uuid.uuid4().hex}"
    assert _ask(client, text) == (text, "MISS")
    assert _until(lambda: _ask(client, text) == (text, "HIT"))
    private_redis.stop()
    for stream in (False, True, False):  # answered every time, from the upstream
        assert _ask(client, text, stream) == (text, "MISS")

    def errors() -> float:
        metrics = client.get("/../metrics", cast_to=str)
        for line in str(metrics).splitlines():
            if line.startswith('llmrelay_cache_backend_errors_total{backend="redis"}'):
                return float(line.split()[-1])
        return 0.0

    assert _until(lambda: errors() >= 1)
    private_redis.start()
    assert _until(
        lambda: _ask(client, text) == (text, "MISS") and _ask(client, text) == (text, "HIT")
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_semantic_questions_are_shared_through_the_database(
    make_postgres_db: Callable[[], str],
    redis_server: None,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    first, _, a, b = _pair(make_postgres_db(), start_gateway, "semantic", **_semantic(0.1))
    topic = uuid.uuid4().hex[:8]
    asked = f"What is the capital of {topic}?"
    assert _ask(a, asked) == (asked, "MISS")
    # Another instance, other words in another order: a semantic hit once it has polled.
    # (no-store: its own misses meanwhile must not become exact hits)
    assert _until(
        lambda: (
            _ask(b, f"the capital of {topic} is WHAT", headers={"cache-control": "no-store"})
            == (asked, "SEMANTIC")
        )
    )
    rows = first.db_query("SELECT count(*) FROM cache_vectors")
    assert rows[0][0] >= 1


@pytest.mark.postgres
@pytest.mark.redis
def test_semantic_questions_reach_the_other_instance_through_redis_at_once(
    make_postgres_db: Callable[[], str],
    redis_server: None,
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    # The poll is 60 s away: a hit within a few seconds can only come from pub/sub.
    first, second, a, b = _pair(make_postgres_db(), start_gateway, "pushed", **_semantic(60))
    for gateway in (first, second):  # both subscribed before the question is stored
        assert _until(
            lambda g=gateway: httpx.get(f"{g.url}/health/ready").json()["cache"]["semantic"][
                "pushed_subscribed"
            ]
        )
    topic = uuid.uuid4().hex[:8]
    asked = f"What is the capital of {topic}?"
    assert _ask(a, asked) == (asked, "MISS")
    started = time.monotonic()
    assert _until(
        lambda: (
            _ask(b, f"the capital of {topic} is WHAT", headers={"cache-control": "no-store"})
            == (asked, "SEMANTIC")
        ),
        seconds=5.0,
    )
    assert time.monotonic() - started < 5.0  # the poll would take up to 60 s
    ready = httpx.get(f"{second.url}/health/ready").json()["cache"]["semantic"]
    assert ready["pushed_received"] >= 1
