"""Route configs through a real gateway process in front of three scripted mock upstreams.

Circuit breaking is switched off here (``test_circuit_breaker.py`` covers it) so the
deliberate failures of one test cannot make another skip a target.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.routing_env import (
    CHAT,
    SEED_FALLBACK,
    SEED_LOADBALANCE,
    attempts_of,
    cli,
    post,
    providers,
    row_count,
    seed_mock_fixtures,
    sse_events,
    streamed_text,
)

# Chi-square critical value, 2 degrees of freedom, p = 0.001: a correct 5/3/2 split
# fails this test once in a thousand runs.
CHI2_DF2_P001 = 13.82


mocks, fresh = seed_mock_fixtures()


@pytest.fixture(scope="module")
def gw(
    mocks: list[MockUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    a, b, c = mocks
    proc = GatewayProcess(
        tmp_path_factory.mktemp("routing"),
        {
            "providers": [
                *providers(a, b, c),
                # A real Anthropic-type provider: it has no embeddings endpoint.
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": b.base_url,
                    "api_key": "sk-ant-upstream-1",
                },
            ],
            "route_configs": {
                "smart": {
                    "strategy": "fallback",
                    "targets": [
                        {"provider": "openai", "model": "smart-a"},
                        {"provider": "anthropic", "model": "smart-b"},
                    ],
                },
                "by-key": {"provider": "anthropic", "model": "keyed-model"},
            },
            "routing": {"circuit_breaker": {"enabled": False}, "config_cache_ttl": 0.2},
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("routing")


def served_by(r: httpx.Response) -> tuple[str, str]:
    return r.headers["x-llmrelay-provider"], r.headers["x-llmrelay-model"]


# -- seed 004's examples, unchanged ------------------------------------------------------


def test_seed_fallback_retries_then_falls_back_on_rate_limit(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, c = mocks
    a.script(*[Behaviour(status=429, headers={"retry-after": "0"})] * 4)
    r = post(gw, key, config=SEED_FALLBACK)
    assert r.status_code == 200, r.text
    assert served_by(r) == ("anthropic", "claude-3-sonnet")
    assert r.headers["x-llmrelay-attempts"] == "5"
    assert r.json()["choices"][0]["message"]["content"] == "hello router"
    assert len(a.requests) == 4 and len(b.requests) == 1 and not c.requests
    assert b.last_request.body["model"] == "claude-3-sonnet"
    attempts = attempts_of(gw, r.headers["x-request-id"])
    assert [(x["provider"], x["status"]) for x in attempts] == [("openai", 429)] * 4 + [
        ("anthropic", 200)
    ]
    assert attempts[0]["error"] == "rate_limit_exceeded"


def test_seed_fallback_reaches_the_last_target_on_timeout(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, c = mocks
    a.script(*[Behaviour(status=429, headers={"retry-after": "0"})] * 4)
    b.script(Behaviour(delay_ms=2000))  # anthropic's provider timeout is 1s
    r = post(gw, key, config=SEED_FALLBACK)
    assert r.status_code == 200, r.text
    # Served by the last target: anthropic's answer (due at 2 s) was not waited for.
    assert served_by(r) == ("ollama", "llama3:8b")
    assert len(b.requests) == 1 and len(c.requests) == 1
    statuses = [x["status"] for x in attempts_of(gw, r.headers["x-request-id"])]
    assert statuses == [429, 429, 429, 429, 504, 200]  # a timeout is not in retry's codes


def test_seed_fallback_does_not_move_on_for_errors_not_listed(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    a.script(Behaviour(status=400, error_message="bad temperature"))
    r = post(gw, key, config=SEED_FALLBACK)
    assert r.status_code == 400 and r.json()["error"]["message"] == "bad temperature"
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-llmrelay-attempts"] == "1" and not b.requests
    # 500 is retried (retry.on_status_codes) but is not in openai's on_errors
    a.script(*[Behaviour(status=500, headers={"retry-after": "0"})] * 4)
    r = post(gw, key, config=SEED_FALLBACK)
    assert r.status_code == 500
    assert r.headers["x-llmrelay-attempts"] == "4" and len(a.requests) == 5
    assert r.headers["x-should-retry"] == "false"  # llmrelay spent its retries
    assert not b.requests


def test_seed_loadbalance_example(gw: GatewayProcess, key: str) -> None:
    counts = Counter(served_by(post(gw, key, config=SEED_LOADBALANCE))[0] for _ in range(300))
    assert set(counts) == {"openai", "anthropic"}
    # 0.9 of 300 = 270, binomial sd ~5.2: +-25 is a 4.8 sd tolerance
    assert abs(counts["openai"] - 270) <= 25, counts


# -- strategies ------------------------------------------------------------------------


def test_weights_hold_over_2000_requests(gw: GatewayProcess, key: str) -> None:
    config = {
        "strategy": "loadbalance",
        "targets": [
            {"provider": "mock", "model": "w-five", "weight": 5},
            {"provider": "mock", "model": "w-three", "weight": 3},
            {"provider": "mock", "model": "w-two", "weight": 2},
        ],
    }
    header = orjson.dumps(config).decode()
    body = orjson.dumps(CHAT)
    counts: Counter[str] = Counter()
    headers = {"authorization": f"Bearer {key}", "x-llmrelay-config": header}

    def one_batch(n: int) -> list[str]:
        with httpx.Client(base_url=gw.base_url, headers=headers) as client:
            out = []
            for _ in range(n):
                r = client.post("/chat/completions", content=body)
                assert r.status_code == 200
                out.append(r.headers["x-llmrelay-model"])
            return out

    with ThreadPoolExecutor(4) as pool:
        for models in pool.map(one_batch, [500] * 4):
            counts.update(models)
    assert sum(counts.values()) == 2000
    weights = {"w-five": 5, "w-three": 3, "w-two": 2}
    chi2 = sum((counts[m] - 2000 * w / 10) ** 2 / (2000 * w / 10) for m, w in weights.items())
    assert chi2 < CHI2_DF2_P001, counts


def test_fallback_on_explicit_status_codes(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "openai", "model": "codes-a", "on_errors": [503]},
            {"provider": "anthropic", "model": "codes-b"},
        ],
    }
    a.script(Behaviour(status=500))
    r = post(gw, key, config=config)
    assert r.status_code == 500 and not b.requests
    assert "x-should-retry" not in r.headers  # one try, retryable: the client may retry
    a.script(Behaviour(status=503))
    r = post(gw, key, config=config)
    assert r.status_code == 200 and served_by(r) == ("anthropic", "codes-b")
    assert r.headers["x-llmrelay-attempts"] == "2"


def test_connection_refused_and_timeouts_fall_back(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "dead", "model": "gone", "on_errors": ["connection"]},
            {"provider": "openai", "model": "slow", "timeout": 0.3, "on_errors": ["timeout"]},
            {"provider": "anthropic", "model": "fine"},
        ],
    }
    # openai's provider timeout is the default (minutes): only the target's 0.3 s one
    # can turn its 2 s answer into the 504 below, so no timing of the call is needed.
    a.script(Behaviour(delay_ms=2000))
    r = post(gw, key, config=config, header="x-llmrelay-config")
    assert r.status_code == 200 and served_by(r) == ("anthropic", "fine")
    assert b.last_request.body["model"] == "fine"
    attempts = attempts_of(gw, r.headers["x-request-id"])
    assert [(x["provider"], x["status"], x.get("error")) for x in attempts] == [
        ("dead", 502, "upstream_unreachable"),
        ("openai", 504, "upstream_timeout"),
        ("anthropic", 200, None),
    ]


def test_retries_back_off_and_stop_at_the_deadline(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    a.script(*[Behaviour(status=500)] * 20)
    config = {
        "provider": "openai",
        "model": "deadline-m",
        "deadline": 1.0,
        "retry": {"attempts": 10, "base_delay": 0.1, "max_delay": 5},
    }
    r = post(gw, key, config=config)
    attempts = attempts_of(gw, r.headers["x-request-id"])
    # The last try's own 500, or, when a loaded machine made that try outlast what was
    # left of the deadline, the deadline's 504 for it (CI saw this once under load).
    assert r.status_code == 500 or (
        r.status_code == 504 and attempts[-1]["error"] == "deadline_exceeded"
    ), (r.status_code, attempts[-1])
    assert r.headers["x-should-retry"] == "false"
    assert len(a.requests) == len(attempts)  # no try after the last one recorded
    # waits 0.05-0.1, 0.1-0.2, 0.2-0.4, 0.4-0.8 s: a 5th try fits only on low draws,
    # and the next wait (>= 0.8 s) never does
    assert len(attempts) in (4, 5)
    waits = [x.get("wait_ms", 0) / 1000 for x in attempts]
    for n, wait in enumerate(waits[1:], start=1):  # equal jitter: [d/2, d], d doubling
        d = 0.1 * 2 ** (n - 1)
        assert d / 2 - 0.005 <= wait <= d + 0.005, waits
    assert attempts[-1]["at_ms"] < 1000


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    config = {"provider": "openai", "model": "ra", "retry": {"attempts": 2}}
    a.script(Behaviour(status=429, headers={"retry-after": "1"}))
    r = post(gw, key, config=config)
    assert r.status_code == 200
    assert r.headers["x-llmrelay-attempts"] == "2"
    # The wait the router recorded before the retry is the upstream's, not its backoff.
    waits = [x.get("wait_ms", 0) for x in attempts_of(gw, r.headers["x-request-id"])]
    assert waits[1] == 1000, waits
    a.script(Behaviour(status=429, headers={"retry-after": "120"}))
    # (a wait of 120 s would end this call at post()'s 20 s timeout: no timing needed)
    r = post(gw, key, config=config)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "120"
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-llmrelay-attempts"] == "1"


def test_quota_errors_are_not_retried_but_fall_back(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    quota = Behaviour(status=429, error_type="insufficient_quota", error_code="insufficient_quota")
    a.script(quota, quota)
    r = post(gw, key, config={"provider": "openai", "model": "q", "retry": {"attempts": 3}})
    assert r.status_code == 429 and r.headers["x-should-retry"] == "false"
    assert r.headers["x-llmrelay-attempts"] == "1"
    r = post(
        gw,
        key,
        config={
            "strategy": "fallback",
            "retry": {"attempts": 3},
            "targets": [
                {"provider": "openai", "model": "q"},
                {"provider": "anthropic", "model": "q2"},
            ],
        },
    )
    assert r.status_code == 200 and served_by(r)[0] == "anthropic"
    assert r.headers["x-llmrelay-attempts"] == "2" and len(b.requests) == 1


def test_conditional_routing_by_metadata(gw: GatewayProcess, key: str) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.user_plan": {"$eq": "paid"}}, "then": "paid"},
                {"query": {"params.temperature": {"$gte": 1}}, "then": "creative"},
            ],
            "default": "free",
        },
        "targets": [
            {"name": "paid", "provider": "mock", "model": "big"},
            {"name": "creative", "provider": "mock", "model": "wild"},
            {"name": "free", "provider": "mock", "model": "small"},
        ],
    }
    meta = orjson.dumps({"user_plan": "paid"}).decode()
    r = post(gw, key, config=config, **{"x-portkey-metadata": meta})
    assert served_by(r) == ("mock", "big")
    r = post(gw, key, {**CHAT, "metadata": {"user_plan": "paid"}}, config=config)
    assert served_by(r) == ("mock", "big")
    assert served_by(post(gw, key, {**CHAT, "temperature": 1.2}, config=config))[1] == "wild"
    assert served_by(post(gw, key, config=config))[1] == "small"
    r = post(gw, key, config=config, **{"x-portkey-metadata": "not json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-portkey-metadata"


def test_model_and_parameter_overrides_reach_the_upstream(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    config = {
        "strategy": "fallback",
        "override_params": {"temperature": 0.1, "max_tokens": 7},
        "targets": [
            {"provider": "openai", "override_params": {"model": "gpt-4.1", "temperature": 0.7}}
        ],
    }
    r = post(gw, key, {**CHAT, "temperature": 1.5}, config=config)
    assert r.status_code == 200 and served_by(r) == ("openai", "gpt-4.1")
    sent = a.last_request.body
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("gpt-4.1", 0.7, 7)
    r = post(gw, key, {**CHAT, "model": "openai/from-request"}, config={"provider": "openai"})
    assert a.last_request.body["model"] == "from-request"


# -- named configs -----------------------------------------------------------------------


def test_named_configs_by_header_model_and_key_default(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    a.script(Behaviour(status=503))
    r = post(gw, key, config="smart", header="x-llmrelay-config")
    assert served_by(r) == ("anthropic", "smart-b")
    r = post(gw, key, {**CHAT, "model": "smart"})
    assert served_by(r) == ("openai", "smart-a")
    keyed = gw.create_key("keyed", route_config="by-key")
    assert served_by(post(gw, keyed)) == ("anthropic", "keyed-model")
    # a header still wins over the key's default
    assert served_by(post(gw, keyed, config={"provider": "mock", "model": "echo"})) == (
        "mock",
        "echo",
    )


def test_database_configs_apply_while_running(gw: GatewayProcess, key: str) -> None:
    code, _, err = cli(
        gw,
        "route-configs",
        "set",
        "from-db",
        "--json",
        orjson.dumps({"provider": "mock", "model": "db-model"}).decode(),
    )
    assert code == 0, err
    deadline = time.monotonic() + 3
    while True:
        r = post(gw, key, config="from-db", header="x-llmrelay-config")
        if r.status_code == 200:
            break
        assert r.json()["error"]["code"] == "route_config_not_found"
        assert time.monotonic() < deadline, "a stored config was not picked up"
        time.sleep(0.1)
    assert served_by(r) == ("mock", "db-model")
    code, _, err = cli(gw, "route-configs", "set", "broken", "--json", '{"strategy": "nope"}')
    assert code == 1 and "strategy" in err
    code, out, err = cli(gw, "keys", "create", "--name", "cli-routed", "--route-config", "from-db")
    assert code == 0, err
    assert served_by(post(gw, out.strip().splitlines()[-1])) == ("mock", "db-model")
    code, _, err = cli(gw, "keys", "create", "--name", "cli-bad", "--route-config", "absent")
    assert code == 1 and "absent" in err


def test_a_config_cannot_route_a_key_past_its_allowed_models(
    gw: GatewayProcess, mocks: list[MockUpstream]
) -> None:
    limited = gw.create_key("only-mock", models=["mock/*"])
    r = post(
        gw,
        limited,
        config={
            "strategy": "fallback",
            "targets": [
                {"provider": "mock", "model": "echo"},
                {"provider": "openai", "model": "gpt-4o"},
            ],
        },
    )
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert "openai/gpt-4o (targets[1]" in r.json()["error"]["message"]
    assert not mocks[0].requests
    assert post(gw, limited, config={"provider": "mock", "model": "echo"}).status_code == 200


# -- invalid configs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "param", "words"),
    [
        (
            {
                "strategy": "loadbalance",
                "targets": [
                    {"provider": "openai", "weight": 1},
                    {"provider": "anthropic", "weight": -1},
                ],
            },
            "targets[1].weight",
            "must be a number >= 0",
        ),
        (
            {"strategy": "fallback", "targets": [{"provider": "openai", "on_error": ["5xx"]}]},
            "targets[0].on_error",
            "unknown field",
        ),
        (
            {
                "strategy": "fallback",
                "targets": [{"provider": "openai"}, {"provider": "bedrock-eu", "model": "x"}],
            },
            "targets[1].provider",
            "no provider named",
        ),
        (
            {"strategy": "fallback", "targets": [{"model": "no-such-model"}]},
            "targets[0].model",
            "unknown model",
        ),
        ('{"strategy": "fallback",', "x-portkey-config", "not valid JSON"),
        ("no-such-config", "x-portkey-config", "no route config named"),
    ],
)
def test_invalid_configs_are_400_naming_the_field(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream], config: Any, param: str, words: str
) -> None:
    r = post(gw, key, config=config, **{"x-request-id": f"bad-{param}"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"]
    assert err["type"] == "invalid_request_error"
    assert all(not m.requests for m in mocks)
    assert row_count(gw, f"bad-{param}") == 0


# -- streaming ---------------------------------------------------------------------------


def test_stream_falls_back_before_the_first_byte(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "openai", "model": "s-a"},
            {"provider": "anthropic", "model": "s-b"},
        ],
    }
    body = {**CHAT, "stream": True}
    for failure in (
        Behaviour(status=500),
        Behaviour(drop_after_chunks=0),
        Behaviour(close_connection=True),
    ):
        a.script(failure)
        r = post(gw, key, body, config=config)
        assert r.status_code == 200 and served_by(r) == ("anthropic", "s-b")
        assert sse_events(r.text)[-1] == "[DONE]"
        assert streamed_text(r.text) == "hello router"
    assert len(b.requests) == 3


def test_stream_time_to_first_token_timeout_falls_back(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a = mocks[0]
    a.script(Behaviour(delay_ms=2000))
    config = {
        "strategy": "fallback",
        "ttft_timeout": 0.3,
        "targets": [
            {"provider": "openai", "model": "ttft-a"},
            {"provider": "anthropic", "model": "ttft-b"},
        ],
    }
    # (openai's provider timeout is minutes: only the 0.3 s TTFT bound falls back)
    r = post(gw, key, {**CHAT, "stream": True}, config=config)
    assert r.status_code == 200 and served_by(r) == ("anthropic", "ttft-b")
    assert streamed_text(r.text) == "hello router"
    first = attempts_of(gw, r.headers["x-request-id"])[0]
    assert first["status"] == 504 and "ttft_timeout" in first["message"]


def test_stream_cut_after_the_first_byte_ends_with_an_error_event(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    a.script(Behaviour(drop_after_chunks=2))
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "openai", "model": "cut-a"},
            {"provider": "anthropic", "model": "cut-b"},
        ],
    }
    r = post(gw, key, {**CHAT, "stream": True}, config=config)
    assert r.status_code == 200 and served_by(r) == ("openai", "cut-a")
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert "error" in orjson.loads(events[-1])
    assert not b.requests  # too late to fall back: bytes already reached the client


# -- a target that cannot serve the call -------------------------------------------------

EMBED = {"model": "text-embedding-3-small", "input": ["a", "b"]}


def embed_fallback(on_errors: list[Any]) -> dict[str, Any]:
    return {
        "strategy": "fallback",
        "targets": [
            {"provider": "claude", "model": "claude-sonnet-4-5", "on_errors": on_errors},
            {"provider": "openai", "model": "text-embedding-3-small"},
        ],
    }


def test_embeddings_fall_back_past_a_provider_that_cannot_embed(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    r = post(gw, key, EMBED, config=embed_fallback(["*"]), path="/embeddings")
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    assert served_by(r) == ("openai", "text-embedding-3-small")
    assert r.headers["x-llmrelay-attempts"] == "1"  # the skip is no upstream call
    assert len(a.requests) == 1 and not b.requests
    skip, served = attempts_of(gw, r.headers["x-request-id"])
    assert (skip["provider"], skip["model"], skip["skipped"], skip["error"]) == (
        "claude",
        "claude-sonnet-4-5",
        "unsupported",
        "unsupported_endpoint",
    )
    assert "status" not in skip and "claude cannot serve embeddings" in skip["message"]
    assert (served["provider"], served["status"]) == ("openai", 200)


def test_embeddings_on_a_provider_that_cannot_embed_are_a_400_unless_on_errors_admits_it(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    a, b, _ = mocks
    r = post(gw, key, EMBED, config=embed_fallback(["timeout", "5xx"]), path="/embeddings")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "unsupported_endpoint",
        "model",
    )
    assert "provider claude cannot serve embeddings" in error["message"]
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-llmrelay-provider"] == "claude"
    assert r.headers["x-llmrelay-attempts"] == "0"
    assert not a.requests and not b.requests
    (skip,) = attempts_of(gw, r.headers["x-request-id"])
    assert (skip["provider"], skip["skipped"]) == ("claude", "unsupported")
    # The class name of the vocabulary admits it too.
    r = post(gw, key, EMBED, config=embed_fallback(["unsupported"]), path="/embeddings")
    assert r.status_code == 200 and served_by(r)[0] == "openai"
