"""Two llmrelay processes sharing PostgreSQL and Redis, hammered concurrently through both:
one limit, one budget, one set of usage rows and summaries."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import MockUpstream
from llmrelay.store.database import migrate_url
from tests.gateway_proc import GatewayProcess
from tests.integration.test_governance_http import (
    MINI_IN,
    MINI_OUT,
    chat,
    governance_config,
    key_id,
    nanos,
    post,
    wait_for,
)
from tests.services import REDIS_HOST, REDIS_PORT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

Pair = tuple[GatewayProcess, GatewayProcess]


@pytest.fixture(scope="module")
def pair(
    upstream: MockUpstream,
    make_postgres_db: Callable[[], str],
    redis_server: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    config = governance_config(upstream)
    config.update(
        database_url=make_postgres_db(),
        redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        # Keys of their own in the shared Redis; generous timeouts on a busy test host.
        redis_prefix=f"{{scaleout-{uuid.uuid4().hex}}}:",
        redis_timeout=2.0,
    )
    # Migrate once, then start both instances side by side (each start costs seconds).
    thread = threading.Thread(target=asyncio.run, args=(migrate_url(config["database_url"]),))
    thread.start()
    thread.join()
    procs = [GatewayProcess(tmp_path_factory.mktemp(f"scale-{n}"), config) for n in "ab"]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(GatewayProcess.start, procs)
    yield first, second
    first.stop()
    second.stop()
    import redis

    client = redis.Redis.from_url(config["redis_url"])
    stale = list(client.scan_iter(match=config["redis_prefix"] + "*"))
    if stale:
        client.delete(*stale)
    client.close()


def hammer(pair: Pair, keys: list[str], body: dict[str, Any], count: int) -> list[int]:
    """``count`` concurrent calls, alternating instances (and keys)."""

    def one(i: int) -> int:
        return post(pair[i % 2], keys[i % len(keys)], body).status_code

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def db_count(gw: GatewayProcess, sql: str) -> int:
    """The first column of the first row, 0 while there is no row yet (the log writer
    writes the summary row in a later batch than the one that answered the call)."""
    rows = gw.db_query(sql)
    return int(rows[0][0] or 0) if rows else 0


def test_two_instances_admit_exactly_the_limit_between_them(pair: Pair) -> None:
    key = pair[0].create_key("shared-rpm", rpm=12)
    statuses = hammer(pair, [key], chat("up/gpt-4o-mini"), 36)
    assert statuses.count(200) == 12 and statuses.count(429) == 24
    kid = key_id(pair[0], "shared-rpm")
    wait_for(
        lambda: (
            db_count(pair[1], f"SELECT COUNT(*) FROM usage_records WHERE api_key_id = '{kid}'")
            >= 12
        )
    )
    assert db_count(pair[0], f"SELECT COUNT(*) FROM requests WHERE api_key_id = '{kid}'") == 12


def test_a_team_limit_holds_across_keys_and_instances(pair: Pair) -> None:
    out = pair[0].cli("teams", "create", "--name", "scale-team", "--rpm", "6")
    assert out.returncode == 0, out.stderr
    team_id = out.stdout.split("(id ")[1].rstrip(")\n")
    keys = [pair[0].create_key(f"member-{i}", team_id=team_id) for i in range(3)]
    statuses = hammer(pair, keys, chat("up/gpt-4o-mini"), 18)
    assert statuses.count(200) == 6


def test_budget_is_overshot_by_at_most_one_call_under_concurrency(pair: Pair) -> None:
    budget = Decimal("0.00002")  # 20,000 nano-dollars; a call costs 1,500
    key = pair[0].create_key("shared-budget", budget=budget)
    body = chat("up/gpt-4o-mini", "hello there", max_tokens=5)
    statuses = hammer(pair, [key], body, 30)
    assert set(statuses) <= {200, 402} and statuses.count(200) >= 5
    # Reservations may have refused calls that would have fit: spend what is left.
    for i in range(20):
        if post(pair[i % 2], key, body).status_code == 402:
            break
    else:
        raise AssertionError("the budget was never exhausted")
    kid = key_id(pair[0], "shared-budget")
    accepted = db_count(
        pair[0], f"SELECT COUNT(*) FROM requests WHERE api_key_id = '{kid}' AND status_code = 200"
    )
    wait_for(
        lambda: (
            db_count(pair[1], f"SELECT COUNT(*) FROM usage_records WHERE api_key_id = '{kid}'")
            >= accepted
        )
    )
    one_call = nanos(2 * MINI_IN + 2 * MINI_OUT)  # "hello there" echoed: 2 + 2 tokens
    spent = db_count(
        pair[0], f"SELECT SUM(cost_nanos) FROM usage_records WHERE api_key_id = '{kid}'"
    )
    limit = nanos(budget)
    assert limit <= spent <= limit + one_call
    persisted = db_count(
        pair[1],
        "SELECT spent_nanos FROM spend_counters WHERE scope = 'key' "
        f"AND scope_id = '{kid}' AND period LIKE '____-__'",
    )
    assert persisted == spent


def test_monthly_summary_equals_the_sum_of_usage_rows(pair: Pair) -> None:
    statuses = hammer(pair, [pair[0].create_key("summed")], chat("metered/priced-model"), 12)
    assert statuses == [200] * 12
    kid = key_id(pair[0], "summed")
    wait_for(
        lambda: (
            db_count(
                pair[0],
                f"SELECT total_requests FROM monthly_usage_summary WHERE api_key_id = '{kid}'",
            )
            == 12
        )
    )
    per_key = pair[0].db_query(
        "SELECT api_key_id, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cost_nanos), SUM(total_cost_usd) FROM usage_records GROUP BY api_key_id "
        "ORDER BY api_key_id"
    )
    summary = pair[0].db_query(
        "SELECT api_key_id, total_requests, prompt_tokens, completion_tokens, "
        "total_cost_nanos, total_cost_usd FROM monthly_usage_summary ORDER BY api_key_id"
    )
    assert [tuple(int(v) for v in row[1:5]) for row in per_key] == [
        tuple(int(v) for v in row[1:5]) for row in summary
    ]
    # On PostgreSQL the dollar columns are exact decimals too.
    assert [row[5] for row in per_key] == [row[5] for row in summary]
    r = httpx.get(pair[1].url + "/health/ready", timeout=5).json()
    assert r["status"] == "ready"
    assert r["governance"]["backend"] == "redis" and r["governance"]["ok"] is True
    assert r["governance"]["fail_mode"] == "open"
