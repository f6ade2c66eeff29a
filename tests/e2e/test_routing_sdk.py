"""Seed 004's way of routing: the official ``openai`` SDK with ``x-portkey-config``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import openai
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.routing_env import SEED_FALLBACK, SEED_LOADBALANCE, providers, seed_mock_fixtures

mocks, fresh = seed_mock_fixtures()


@pytest.fixture(scope="module")
def gw(
    mocks: list[MockUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-routing"),
        {
            "providers": providers(*mocks),
            "routing": {"circuit_breaker": {"enabled": False}},
        },
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("sdk-routing")


def sdk(gw: GatewayProcess, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=retries)


def test_seed_fallback_config_non_stream(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    a.script(*[Behaviour(status=429, headers={"retry-after": "0"})] * 4)
    with sdk(gw, key) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Xin chào!"}],
            extra_headers={"x-portkey-config": json.dumps(SEED_FALLBACK)},
        )
    response = raw.parse()
    assert response.choices[0].message.content == "Xin chào!"
    assert response.model == "claude-3-sonnet"
    assert raw.headers["x-llmrelay-provider"] == "anthropic"
    assert raw.headers["x-llmrelay-attempts"] == "5"
    assert len(b.requests) == 1


def test_seed_fallback_config_stream(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    a.script(*[Behaviour(status=429, headers={"retry-after": "0"})] * 4)
    with sdk(gw, key) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": "one two three"}],
            extra_headers={"x-portkey-config": json.dumps(SEED_FALLBACK)},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "one two three"


def test_seed_loadbalance_config(gw: GatewayProcess, key: str) -> None:
    models: Counter[str] = Counter()
    with sdk(gw, key) as client:
        for _ in range(60):
            r = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-portkey-config": json.dumps(SEED_LOADBALANCE)},
            )
            models[r.model] += 1
    assert set(models) <= {"gpt-4o-mini", "claude-3-5-sonnet-20241022"}
    # 0.9 of 60 = 54, binomial sd 2.3: at least 44 is a 4.3 sd tolerance
    assert models["gpt-4o-mini"] >= 44, models


def test_sdk_does_not_retry_on_top_of_llmrelay(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    a.script(*[Behaviour(status=500)] * 10)
    config = {"provider": "openai", "model": "amp", "retry": {"attempts": 1, "base_delay": 0.01}}
    with sdk(gw, key, retries=2) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-portkey-config": json.dumps(config)},
        )
    assert len(a.requests) == 2  # llmrelay's try + retry; the SDK added none
    # Without a config llmrelay made one try, so the SDK's own retry is left alone.
    a.reset()
    a.script(*[Behaviour(status=500)] * 10)
    with sdk(gw, key, retries=1) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="openai/amp",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert len(a.requests) == 2
