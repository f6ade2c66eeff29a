"""Limits, budgets and exact spend as the official SDKs see them, on every endpoint.

* ``openai``: 429 is a ``RateLimitError`` carrying the ``x-ratelimit-*`` and ``retry-after``
  headers; 402 is an ``APIStatusError`` with status 402; the cost header is readable.
* spend is exact for chat, ``/v1/responses`` (``openai``) and ``/v1/messages``
  (``anthropic``), streamed or not, and for an Anthropic upstream's cache tokens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.integration.test_governance_http import (
    PRICE_CACHED,
    PRICE_IN,
    PRICE_OUT,
    USAGE,
    behaviour,
    key_id,
    nanos,
    wait_for,
)

METERED = nanos(400 * PRICE_IN + 600 * PRICE_CACHED + 7 * PRICE_OUT)
#: Anthropic usage: input_tokens exclude cache reads and writes.
CLAUDE_USAGE = {
    "input_tokens": 100,
    "cache_read_input_tokens": 800,
    "cache_creation_input_tokens": 50,
    "output_tokens": 9,
}
CLAUDE_PRICE = {
    "input_cost_per_token": "0.000003",
    "output_cost_per_token": "0.000015",
    "cache_read_input_token_cost": "0.0000003",
    "cache_creation_input_token_cost": "0.00000375",
}
CLAUDE_COST = nanos(
    100 * Decimal("0.000003")
    + 800 * Decimal("0.0000003")
    + 50 * Decimal("0.00000375")
    + 9 * Decimal("0.000015")
)


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-governance"),
        {
            "providers": [
                {
                    "name": "metered",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "upstream-key",
                    "headers": behaviour(usage=USAGE),
                },
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": upstream.base_url,
                    "api_key": "sk-ant-upstream-1234",
                    "headers": behaviour(usage=CLAUDE_USAGE),
                },
            ],
            "prices": {
                "metered/priced-model": {
                    "input_cost_per_token": str(PRICE_IN),
                    "output_cost_per_token": str(PRICE_OUT),
                    "cache_read_input_token_cost": str(PRICE_CACHED),
                },
                "claude/claude-test": CLAUDE_PRICE,
            },
        },
    )
    proc.start()
    yield proc
    proc.stop()


def oai(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


HELLO: Any = [{"role": "user", "content": "hello there"}]


def test_rate_limit_error_carries_the_openai_headers(gw: GatewayProcess) -> None:
    with oai(gw, gw.create_key("sdk-rpm", rpm=1)) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="metered/priced-model", messages=HELLO
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        assert raw.headers["x-llmrelay-cost-usd"] == f"{Decimal(METERED) / 10**9:.9f}"
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="metered/priced-model", messages=HELLO)
    err = caught.value
    assert err.status_code == 429
    assert isinstance(err.body, dict)
    assert err.body["message"].startswith(
        "rate limit exceeded: key 'sdk-rpm' allows 1 requests per minute"
    )
    assert err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    headers = err.response.headers
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"]
    assert 1 <= int(headers["retry-after"]) <= 60


def test_budget_exceeded_is_an_api_status_error_402(gw: GatewayProcess) -> None:
    with oai(gw, gw.create_key("sdk-budget", budget=Decimal("0.000001"))) as client:
        client.chat.completions.create(model="metered/priced-model", messages=HELLO)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="metered/priced-model", messages=HELLO)
    err = caught.value
    assert err.status_code == 402 and not isinstance(err, openai.RateLimitError)
    assert isinstance(err.body, dict)
    assert err.body["message"].startswith("monthly budget exceeded: key 'sdk-budget'")
    assert err.code == "budget_exceeded"


def costs(gw: GatewayProcess, name: str, count: int) -> list[tuple[int, int, bool]]:
    kid = key_id(gw, name)
    sql = (
        "SELECT cost_nanos, prompt_tokens, usage_estimated FROM usage_records "
        f"WHERE api_key_id = '{kid}' ORDER BY created_at"
    )
    wait_for(lambda: len(gw.db_query(sql)) >= count)
    time.sleep(0.05)
    return [(int(c), int(p), bool(e)) for c, p, e in gw.db_query(sql)]


def test_spend_is_exact_on_chat_responses_and_messages_streamed_or_not(
    gw: GatewayProcess,
) -> None:
    key = gw.create_key("sdk-endpoints")
    with oai(gw, key) as client:
        client.chat.completions.create(model="metered/priced-model", messages=HELLO)
        for _ in client.chat.completions.create(
            model="metered/priced-model", messages=HELLO, stream=True
        ):
            pass
        client.responses.create(model="metered/priced-model", input="hello there")
        with client.responses.stream(model="metered/priced-model", input="hello there") as s:
            for _ in s:
                pass
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as claude:
        claude.messages.create(model="metered/priced-model", max_tokens=50, messages=HELLO)
        with claude.messages.stream(
            model="metered/priced-model", max_tokens=50, messages=HELLO
        ) as s:
            for _ in s:
                pass
    assert costs(gw, "sdk-endpoints", 6) == [(METERED, 1000, False)] * 6


def test_anthropic_cache_tokens_are_priced_at_cache_rates(gw: GatewayProcess) -> None:
    key = gw.create_key("sdk-claude")
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as claude:
        reply = claude.messages.with_raw_response.create(
            model="claude/claude-test", max_tokens=50, messages=HELLO
        )
        assert reply.headers["x-llmrelay-cost-usd"] == f"{Decimal(CLAUDE_COST) / 10**9:.9f}"
        with claude.messages.stream(model="claude/claude-test", max_tokens=50, messages=HELLO) as s:
            for _ in s:
                pass
    with oai(gw, key) as client:
        client.chat.completions.create(model="claude/claude-test", messages=HELLO)
    # prompt_tokens in OpenAI terms: 100 + 800 read + 50 written.
    assert costs(gw, "sdk-claude", 3) == [(CLAUDE_COST, 950, False)] * 3
    log = [orjson.loads(line) for line in gw.interactions().splitlines() if line.strip()]
    priced = [e for e in log if e.get("key_name") == "sdk-claude"]
    assert {e["cost_usd"] for e in priced} == {f"{Decimal(CLAUDE_COST) / 10**9:.9f}"}
