"""A key's model allow-list holds for every target a call can reach, through real HTTP.

The key here may use ``openai/allowed*``, the alias ``cheap`` and the named config
``smart-cfg``. Every request below asks for an allowed model (``openai/allowed``), which
used to admit the whole route config; now each target of the plan must be allowed by
its own name (or by a name that resolved to it), or the call is a 403 before any
upstream call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.routing_env import post, providers, seed_mock_fixtures

mocks, fresh = seed_mock_fixtures()

ALLOWED = "openai/allowed"


@pytest.fixture(scope="module")
def gw(
    mocks: list[MockUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    a, b, c = mocks
    proc = GatewayProcess(
        tmp_path_factory.mktemp("access"),
        {
            "providers": providers(a, b, c),
            "aliases": {"cheap": "openai/allowed-cheap", "sneaky": "anthropic/secret"},
            "route_configs": {
                # Selected by using its name as the model: the operator's alias for its targets.
                "smart-cfg": {
                    "strategy": "fallback",
                    "targets": [
                        {"provider": "openai", "model": "smart-a"},
                        {"provider": "anthropic", "model": "smart-b"},
                    ],
                },
                "not-granted": {
                    "strategy": "fallback",
                    "targets": [
                        {"provider": "openai", "model": "allowed-x"},
                        {"provider": "anthropic", "model": "smart-b"},
                    ],
                },
                # Takes the request's model: the client chooses it, so the name admits nothing.
                "any-model": {"provider": "anthropic"},
                "to-anthropic": {"provider": "anthropic", "model": "keyed"},
            },
            "routing": {"circuit_breaker": {"enabled": False}},
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("limited", models=["openai/allowed*", "cheap", "smart-cfg"])


def chat(model: str = ALLOWED, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def assert_denied(r: httpx.Response, mocks: list[MockUpstream], target: str) -> None:
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["type"] == "permission_error" and target in err["message"], err
    assert all(not m.requests for m in mocks), "an upstream was called before the 403"


DENIED_CONFIGS: list[tuple[str, Any, str]] = [
    ("single, the reported bypass", {"provider": "anthropic", "model": "x"}, "anthropic/x"),
    (
        "provider only: the request's model on another provider",
        {"provider": "anthropic"},
        "anthropic/openai/allowed",
    ),
    (
        "fallback member",
        {
            "strategy": "fallback",
            "targets": [
                {"provider": "openai", "model": "allowed"},
                {"provider": "anthropic", "model": "fb"},
            ],
        },
        "anthropic/fb",
    ),
    (
        "load-balanced member, even at weight 0",
        {
            "strategy": "loadbalance",
            "targets": [
                {"provider": "openai", "model": "allowed", "weight": 1},
                {"provider": "ollama", "model": "lb", "weight": 0},
            ],
        },
        "ollama/lb",
    ),
    (
        "conditional branch not taken",
        {
            "strategy": {
                "mode": "conditional",
                "default": "ok",
                "conditions": [{"query": {"metadata.tier": {"$eq": "gold"}}, "then": "gold"}],
            },
            "targets": [
                {"name": "ok", "provider": "openai", "model": "allowed"},
                {"name": "gold", "provider": "anthropic", "model": "gold"},
            ],
        },
        "anthropic/gold",
    ),
    (
        "nested group",
        {
            "strategy": "fallback",
            "targets": [
                {"provider": "openai", "model": "allowed"},
                {
                    "strategy": "loadbalance",
                    "targets": [
                        {"provider": "openai", "model": "allowed-2"},
                        {
                            "strategy": "fallback",
                            "targets": [{"provider": "ollama", "model": "deep"}],
                        },
                    ],
                },
            ],
        },
        "ollama/deep",
    ),
    (
        "override_params.model inherited by a target",
        {
            "strategy": "fallback",
            "override_params": {"model": "evil"},
            "targets": [{"provider": "openai"}],
        },
        "openai/evil",
    ),
    (
        "override_params.model on the target",
        {"provider": "openai", "override_params": {"model": "gpt-expensive"}},
        "openai/gpt-expensive",
    ),
    ("a model name that resolves elsewhere", {"model": "sneaky"}, "anthropic/secret"),
    ("stored config by name in the header", "any-model", "anthropic/openai/allowed"),
]


@pytest.mark.parametrize(
    ("shape", "config", "target"), DENIED_CONFIGS, ids=[c[0] for c in DENIED_CONFIGS]
)
def test_every_target_of_a_header_config_must_be_allowed(
    gw: GatewayProcess,
    key: str,
    mocks: list[MockUpstream],
    shape: str,
    config: Any,
    target: str,
) -> None:
    r = post(gw, key, chat(), config=config, header="x-llmrelay-config")
    assert_denied(r, mocks, target)
    streamed = post(gw, key, chat(stream=True), config=config)
    assert_denied(streamed, mocks, target)


def test_allowed_targets_and_names_that_resolve_to_them_pass(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    for body, config in [
        (chat(), None),
        (chat("cheap"), None),  # an allowed alias admits the target it resolves to
        (chat("smart-cfg"), None),  # an allowed stored config's name admits its targets
        (chat(), {"provider": "openai"}),  # the request's own model, resolved the same
        (
            chat(),
            {
                "strategy": "fallback",
                "targets": [{"provider": "openai", "model": "allowed-1"}, {"model": "cheap"}],
            },
        ),
        (chat("other"), {"provider": "openai", "override_params": {"model": "allowed-9"}}),
    ]:
        r = post(gw, key, body, config=config)
        assert r.status_code == 200, (body, config, r.text)
    assert mocks[0].requests and not mocks[1].requests and not mocks[2].requests


def test_direct_calls_check_the_resolved_target(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream]
) -> None:
    assert_denied(post(gw, key, chat("anthropic/x")), mocks, "anthropic/x")
    assert_denied(post(gw, key, chat("sneaky")), mocks, "sneaky")
    # a stored config not granted by name needs every target allowed on its own
    assert_denied(post(gw, key, chat("not-granted")), mocks, "anthropic/smart-b")


def test_a_keys_default_config_is_checked_too(
    gw: GatewayProcess, mocks: list[MockUpstream]
) -> None:
    keyed = gw.create_key("keyed-limited", models=["openai/*"], route_config="to-anthropic")
    assert_denied(post(gw, keyed, chat("openai/anything")), mocks, "anthropic/keyed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {"model": ALLOWED, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("/v1/responses", {"model": ALLOWED, "input": "hi"}),
        ("/v1/embeddings", {"model": ALLOWED, "input": "hi"}),
    ],
)
def test_other_endpoints_check_every_target(
    gw: GatewayProcess, key: str, mocks: list[MockUpstream], path: str, body: dict[str, Any]
) -> None:
    r = httpx.post(
        gw.url + path,
        content=orjson.dumps(body),
        timeout=20,
        headers={
            "authorization": f"Bearer {key}",
            "x-llmrelay-config": orjson.dumps({"provider": "anthropic", "model": "x"}).decode(),
        },
    )
    assert r.status_code == 403, r.text
    assert "anthropic/x" in r.text
    assert all(not m.requests for m in mocks)
