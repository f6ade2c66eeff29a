"""Limits, budgets and exact cost through the real HTTP surface, one node on SQLite.

The mock upstream's behaviour is fixed per provider through the ``x-mock-behaviour``
header the gateway sends (``providers[].headers``), so these tests never race on the
mock's shared script queue.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.governance import estimate
from llmrelay.governance.pricing import NANOS_PER_USD
from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

#: Prices with many decimals, set in the config (they override the catalog).
PRICE_IN = Decimal("0.000000141953125")
PRICE_OUT = Decimal("0.0000012345678")
PRICE_CACHED = Decimal("0.0000000123")
#: gpt-4o-mini in the bundled LiteLLM snapshot.
MINI_IN, MINI_OUT = Decimal("0.00000015"), Decimal("0.0000006")
USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 7,
    "prompt_tokens_details": {"cached_tokens": 600},
}
LONG_REPLY = " ".join(f"word{i}" for i in range(40))


def behaviour(**fields: Any) -> dict[str, str]:
    return {"x-mock-behaviour": orjson.dumps(fields).decode()}


def governance_config(upstream: MockUpstream) -> dict[str, Any]:
    def provider(name: str, **fields: Any) -> dict[str, Any]:
        p: dict[str, Any] = {
            "name": name,
            "type": "openai_compatible",
            "base_url": upstream.base_url,
            "api_key": "upstream-key",
        }
        if fields:
            p["headers"] = behaviour(**fields)
        return p

    return {
        "providers": [
            provider("up"),
            provider("metered", usage=USAGE),
            provider("cut", reply=LONG_REPLY, drop_after_chunks=6),
            provider("slow", reply=LONG_REPLY, chunk_delay_ms=150),
        ],
        "prices": {
            "metered/priced-model": {
                "input_cost_per_token": str(PRICE_IN),
                "output_cost_per_token": str(PRICE_OUT),
                "cache_read_input_token_cost": str(PRICE_CACHED),
            }
        },
    }


def nanos(usd: Decimal) -> int:
    return int((usd * NANOS_PER_USD).to_integral_value(rounding="ROUND_HALF_UP"))


def chat(model: str, content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def post(
    gw: GatewayProcess, key: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> httpx.Response:
    return httpx.post(
        gw.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=15
    )


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def key_id(gw: GatewayProcess, name: str) -> str:
    return str(gw.db_query(f"SELECT id FROM api_keys WHERE name = '{name}'")[0][0])


def usage_rows(gw: GatewayProcess, key: str) -> list[tuple[Any, ...]]:
    return gw.db_query(
        "SELECT prompt_tokens, completion_tokens, cached_tokens, cost_nanos, usage_estimated, "
        f"status_code FROM usage_records WHERE api_key_id = '{key_id(gw, key)}' "
        "ORDER BY created_at"
    )


def rows_for(gw: GatewayProcess, key: str, count: int) -> list[tuple[Any, ...]]:
    wait_for(lambda: len(usage_rows(gw, key)) >= count)
    time.sleep(0.05)
    return usage_rows(gw, key)


@pytest.fixture(scope="module")
def gov_gw(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> GatewayProcess:
    gw = GatewayProcess(tmp_path_factory.mktemp("gov-sqlite"), governance_config(upstream))
    gw.start()
    yield gw  # type: ignore[misc]
    gw.stop()


def test_rpm_admits_exactly_the_limit_and_rejections_leave_no_trace(
    gov_gw: GatewayProcess,
) -> None:
    key = gov_gw.create_key("rpm3", rpm=3)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(gov_gw, key, chat("up/gpt-4o-mini")), range(8)))
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) == 3 and len(refused) == 5
    err = refused[0].json()["error"]
    assert err["message"].startswith("rate limit exceeded: key 'rpm3' allows 3 requests per minute")
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    h = refused[0].headers
    assert h["x-ratelimit-limit-requests"] == "3"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert 55 <= int(h["retry-after"]) <= 60 and int(h["retry-after-ms"]) > 50_000
    assert h["x-ratelimit-reset-requests"].endswith("s")
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert remaining == [0, 1, 2]
    rows = rows_for(gov_gw, "rpm3", 3)
    assert len(rows) == 3  # refused calls are neither recorded nor charged
    kid = key_id(gov_gw, "rpm3")
    assert gov_gw.db_query(f"SELECT COUNT(*) FROM requests WHERE api_key_id = '{kid}'") == [(3,)]


def test_cost_is_exact_in_header_usage_row_request_row_and_summary(
    gov_gw: GatewayProcess,
) -> None:
    key = gov_gw.create_key("metered")
    expected = nanos(400 * PRICE_IN + 600 * PRICE_CACHED + 7 * PRICE_OUT)
    r = post(gov_gw, key, chat("metered/priced-model"))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmrelay-cost-usd"] == f"{Decimal(expected) / NANOS_PER_USD:.9f}"
    stream = post(gov_gw, key, chat("metered/priced-model", stream=True))
    assert stream.status_code == 200 and "[DONE]" in stream.text
    rows = rows_for(gov_gw, "metered", 2)
    assert [row[:4] for row in rows] == [(1000, 7, 600, expected)] * 2
    assert not any(row[4] for row in rows)
    kid = key_id(gov_gw, "metered")
    assert gov_gw.db_query(f"SELECT cost_nanos FROM requests WHERE api_key_id = '{kid}'") == [
        (expected,),
        (expected,),
    ]
    summary = gov_gw.db_query(
        "SELECT total_requests, prompt_tokens, completion_tokens, total_cost_nanos, "
        f"total_cost_usd FROM monthly_usage_summary WHERE api_key_id = '{kid}'"
    )
    assert summary[0][:4] == (2, 2000, 14, 2 * expected)
    assert Decimal(str(summary[0][4])) == Decimal(2 * expected) / NANOS_PER_USD


def test_embeddings_are_priced_by_the_catalog(gov_gw: GatewayProcess) -> None:
    key = gov_gw.create_key("embed")
    r = post(
        gov_gw,
        key,
        {"model": "up/text-embedding-3-small", "input": "one two three"},
        path="/v1/embeddings",
    )
    assert r.status_code == 200, r.text
    tokens = r.json()["usage"]["prompt_tokens"]
    expected = nanos(tokens * Decimal("0.00000002"))
    assert r.headers["x-llmrelay-cost-usd"] == f"{Decimal(expected) / NANOS_PER_USD:.9f}"
    assert rows_for(gov_gw, "embed", 1)[0][3] == expected


def delivered_chars(sse: str) -> int:
    chars = 0
    for event in sse.split("\n\n"):
        if not event.startswith("data: {"):
            continue
        for choice in orjson.loads(event[6:]).get("choices") or []:
            chars += len((choice.get("delta") or {}).get("content") or "")
    return chars


def test_a_stream_cut_upstream_is_charged_for_what_was_delivered(
    gov_gw: GatewayProcess,
) -> None:
    key = gov_gw.create_key("cut")
    body = chat("cut/gpt-4o-mini", "please say many words", stream=True)
    r = post(gov_gw, key, body)
    assert r.status_code == 200 and "[DONE]" not in r.text
    chars = delivered_chars(r.text)
    assert 0 < chars < len(LONG_REPLY)
    (row,) = rows_for(gov_gw, "cut", 1)
    prompt = estimate.prompt_tokens(body)
    completion = math.ceil(chars / 4)
    assert row[:2] == (prompt, completion) and row[4]  # usage_estimated
    assert row[3] == nanos(prompt * MINI_IN + completion * MINI_OUT) > 0


def test_a_stream_the_client_abandons_is_charged_for_what_was_delivered(
    gov_gw: GatewayProcess,
) -> None:
    key = gov_gw.create_key("gone")
    body = chat("slow/gpt-4o-mini", "a long answer please", stream=True)
    seen = ""
    with (
        httpx.Client(timeout=15) as client,
        client.stream(
            "POST",
            gov_gw.url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        ) as resp,
    ):
        for line in resp.iter_lines():
            seen += line + "\n\n"
            if seen.count('"content"') >= 4:
                break  # hang up mid-stream
    (row,) = rows_for(gov_gw, "gone", 1)
    prompt_t, completion_t, _, cost, estimated, _ = row
    assert estimated and prompt_t == estimate.prompt_tokens(body)
    full = math.ceil(len(LONG_REPLY) / 4)
    assert math.ceil(delivered_chars(seen) / 4) <= completion_t < full
    assert cost == nanos(prompt_t * MINI_IN + completion_t * MINI_OUT)


def test_token_limit_reserves_max_tokens_then_counts_real_usage(gov_gw: GatewayProcess) -> None:
    key = gov_gw.create_key("tpm", tpm=60)
    first = post(gov_gw, key, chat("up/gpt-4o-mini", max_tokens=50))
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "60"
    # 50 + the prompt estimate were reserved; the reply used ~4 tokens, which is what stays.
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 10
    assert post(gov_gw, key, chat("up/gpt-4o-mini", max_tokens=50)).status_code == 200
    big = post(gov_gw, key, chat("metered/priced-model", max_tokens=10))  # really 1007 tokens
    assert big.status_code == 200
    refused = post(gov_gw, key, chat("up/gpt-4o-mini", max_tokens=1))
    assert refused.status_code == 429
    assert "allows 60 tokens per minute" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_key_and_model_limit_applies_only_to_matching_models(gov_gw: GatewayProcess) -> None:
    key = gov_gw.create_key("permodel", model_limits={"up/gpt-4o*": {"rpm": 1}})
    assert post(gov_gw, key, chat("up/gpt-4o-mini")).status_code == 200
    refused = post(gov_gw, key, chat("up/gpt-4o-mini"))
    assert refused.status_code == 429
    assert "for models 'up/gpt-4o*'" in refused.json()["error"]["message"]
    assert post(gov_gw, key, chat("up/other-model")).status_code == 200


def test_team_limit_is_shared_by_its_keys_and_named_when_hit(gov_gw: GatewayProcess) -> None:
    out = gov_gw.cli("teams", "create", "--name", "research", "--rpm", "3")
    assert out.returncode == 0, out.stderr
    team_id = out.stdout.split("(id ")[1].rstrip(")\n")
    a = gov_gw.create_key("team-a", team_id=team_id, rpm=100)
    b = gov_gw.create_key("team-b", team_id=team_id)
    statuses = [post(gov_gw, k, chat("up/gpt-4o-mini")).status_code for k in (a, b, a, b, a)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = post(gov_gw, b, chat("up/gpt-4o-mini"))
    assert refused.json()["error"]["message"].startswith(
        "rate limit exceeded: team 'research' allows 3 requests per minute"
    )
    listing = gov_gw.cli("teams", "list")
    assert "research" in listing.stdout and listing.stdout.rstrip().endswith("2")


def test_summary_equals_the_sum_of_usage_rows(gov_gw: GatewayProcess) -> None:
    time.sleep(0.1)
    per_key = gov_gw.db_query(
        "SELECT api_key_id, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cost_nanos) FROM usage_records GROUP BY api_key_id ORDER BY api_key_id"
    )
    summary = gov_gw.db_query(
        "SELECT api_key_id, total_requests, prompt_tokens, completion_tokens, total_cost_nanos "
        "FROM monthly_usage_summary ORDER BY api_key_id"
    )
    assert per_key and per_key == summary
    # Seed 000's reporting query works as written.
    seed = gov_gw.db_query(
        "SELECT ak.name, COUNT(ur.id), SUM(ur.total_cost_usd) FROM api_keys ak "
        "LEFT JOIN usage_records ur ON ur.api_key_id = ak.id GROUP BY ak.id, ak.name"
    )
    assert {name for name, count, _ in seed if count} >= {"metered", "rpm3"}
    report = gov_gw.cli("usage")
    assert report.returncode == 0 and "metered" in report.stdout


def test_daily_budget_is_enforced(gov_gw: GatewayProcess) -> None:
    key = gov_gw.create_key("daily", daily_budget=Decimal("0.000001"))
    assert post(gov_gw, key, chat("up/gpt-4o-mini")).status_code == 200
    refused = post(gov_gw, key, chat("up/gpt-4o-mini"))
    assert refused.status_code == 402
    assert refused.json()["error"]["message"].startswith("daily budget exceeded: key 'daily'")


def test_several_workers_without_redis_refuse_to_start(tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--workers", "2", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.returncode == 2
    assert "need redis_url" in out.stderr and "run one worker" in out.stderr


def test_monthly_budget_holds_and_survives_a_restart(gov_gw: GatewayProcess) -> None:
    """Last in the module: it restarts the module's gateway."""
    gw = gov_gw
    key = gw.create_key("budget", budget=Decimal("0.0001"))
    cost = nanos(400 * PRICE_IN + 600 * PRICE_CACHED + 7 * PRICE_OUT)  # ~$0.0000728
    assert post(gw, key, chat("metered/priced-model")).status_code == 200
    assert post(gw, key, chat("metered/priced-model")).status_code == 200  # $0.0000728 < $0.0001
    refused = post(gw, key, chat("metered/priced-model"))
    assert refused.status_code == 402
    err = refused.json()["error"]
    assert err["message"].startswith(
        "monthly budget exceeded: key 'budget' has used its $0.000100000 budget for "
    )
    assert err["code"] == "budget_exceeded"
    rows = rows_for(gw, "budget", 2)
    assert sum(r[3] for r in rows) == 2 * cost  # overshoot below one call's cost
    gw.stop()
    gw.start()  # same database: spend is read back from spend_counters
    assert post(gw, key, chat("metered/priced-model")).status_code == 402
    assert len(usage_rows(gw, "budget")) == 2
