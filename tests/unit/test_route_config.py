"""The route config schema: seed 004's examples parse; bad configs name the bad field."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay.routing.classify import MATCH_ANY
from llmrelay.routing.conditions import RequestFacts, choose
from llmrelay.routing.config import RouteConfigError, RouteSpec, TargetSpec, parse_route_config
from llmrelay.routing.retry import DEFAULT_RETRY_STATUSES, NO_RETRY
from tests.routing_env import SEED_FALLBACK, SEED_LOADBALANCE

# Seed 004, "Example 3" (single target at the top level).
SEED_SINGLE: dict[str, Any] = {
    "strategy": "single",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "cache": {"mode": "semantic", "ttl": 86400},
}


def leaf(spec: RouteSpec | TargetSpec) -> TargetSpec:
    assert isinstance(spec, TargetSpec)
    return spec


def test_seed_fallback_example() -> None:
    spec = parse_route_config(SEED_FALLBACK)
    assert spec.strategy == "fallback" and len(spec.targets) == 3
    first, second, third = (leaf(t) for t in spec.targets)
    assert (first.provider, first.model) == ("openai", "gpt-4o-mini")
    assert first.on_errors.classes == {"timeout", "rate_limit"}
    assert second.on_errors.classes == {"timeout"}
    assert third.on_errors.any
    for t in (first, second, third):  # the group's retry is inherited by every target
        assert t.retry.attempts == 3
        assert t.retry.on_status_codes == {429, 500, 502, 503}
        assert t.retry.exponential_backoff
    assert spec.cache == {"mode": "semantic", "ttl": 3600}


def test_seed_loadbalance_and_single_examples() -> None:
    lb = parse_route_config(SEED_LOADBALANCE)
    assert lb.strategy == "loadbalance"
    assert [leaf(t).weight for t in lb.targets] == [0.9, 0.1]
    single = parse_route_config(SEED_SINGLE)
    assert single.strategy == "single"
    assert leaf(single.targets[0]).provider == "openai"
    assert single.cache == {"mode": "semantic", "ttl": 86400}


def test_seed_issue_three_status_code_string() -> None:
    spec = parse_route_config(
        {
            "strategy": "fallback",
            "targets": [
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "on_errors": ["timeout", "rate_limit", "429"],
                }
            ],
        }
    )
    assert leaf(spec.targets[0]).on_errors.statuses == {429}


def test_defaults_and_portkey_strategy_object() -> None:
    spec = parse_route_config(
        {
            "strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
            "targets": [{"provider": "a"}, {"model": "b/x", "on_errors": ["5xx"]}],
            "request_timeout": 2500,
        }
    )
    a, b = (leaf(t) for t in spec.targets)
    assert a.on_errors.statuses == {429, 503} and not a.on_errors.classes
    assert b.on_errors.classes == {"5xx"}
    assert a.timeout == 2.5 and b.timeout == 2.5  # Portkey's milliseconds
    assert a.retry == NO_RETRY and a.retry.on_status_codes == DEFAULT_RETRY_STATUSES
    plain = parse_route_config({"provider": "p"})
    assert leaf(plain.targets[0]).on_errors == MATCH_ANY


def test_nested_inheritance_and_overrides() -> None:
    spec = parse_route_config(
        {
            "strategy": "fallback",
            "retry": {"attempts": 2, "base_delay": 0.1},
            "timeout": 5,
            "ttft_timeout": 1.5,
            "override_params": {"temperature": 0.2, "max_tokens": 50},
            "targets": [
                {
                    "strategy": "loadbalance",
                    "retry": {"attempts": 0},
                    "targets": [
                        {"provider": "a", "weight": 3, "override_params": {"temperature": 0.9}},
                        {"provider": "b", "override_params": {"model": "b-large"}},
                    ],
                },
                {"provider": "c", "model": "m", "timeout": 1},
            ],
        }
    )
    inner = spec.targets[0]
    assert isinstance(inner, RouteSpec) and inner.strategy == "loadbalance"
    a, b = (leaf(t) for t in inner.targets)
    assert a.retry.attempts == 0 and a.timeout == 5 and a.ttft_timeout == 1.5
    assert a.params == {"temperature": 0.9, "max_tokens": 50}
    assert (b.model, b.params) == ("b-large", {"temperature": 0.2, "max_tokens": 50})
    c = leaf(spec.targets[1])
    assert c.retry.attempts == 2 and c.retry.base_delay == 0.1 and c.timeout == 1
    assert [t.path for t in spec.leaves()] == [
        "targets[0].targets[0]",
        "targets[0].targets[1]",
        "targets[1]",
    ]


def test_conditional_routing_picks_by_metadata_and_params() -> None:
    spec = parse_route_config(
        {
            "strategy": {
                "mode": "conditional",
                "conditions": [
                    {"query": {"metadata.user_plan": {"$eq": "paid"}}, "then": "big"},
                    {
                        "query": {
                            "$or": [
                                {"params.model": "fast"},
                                {"headers.x-team": {"$regex": "^ml-"}},
                            ]
                        },
                        "then": "fast",
                    },
                    {
                        "query": {"metadata.tier": {"$gte": 3}, "metadata.region": {"$in": ["eu"]}},
                        "then": "eu",
                    },
                ],
                "default": "small",
            },
            "targets": [
                {"name": "big", "provider": "a"},
                {"name": "fast", "provider": "b"},
                {"name": "eu", "provider": "c"},
                {"name": "small", "provider": "d"},
            ],
        }
    )

    def pick(
        metadata: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> str | None:
        facts = RequestFacts(metadata or {}, params or {}, headers or {})
        return choose(spec.conditions, spec.default, facts)

    assert pick({"user_plan": "paid"}) == "big"
    assert pick({"user_plan": "free"}) == "small"
    assert pick(params={"model": "fast"}) == "fast"
    assert pick(headers={"x-team": "ml-research"}) == "fast"
    assert pick({"tier": 3, "region": "eu"}) == "eu"
    assert pick({"tier": 2, "region": "eu"}) == "small"
    assert pick({"tier": "3", "region": "eu"}) == "small"  # no string/number coercion


@pytest.mark.parametrize(
    ("config", "path", "words"),
    [
        ([], "", "JSON object"),
        (
            {"strategy": "roundrobin", "targets": [{"provider": "a"}]},
            "strategy",
            "unknown strategy",
        ),
        ({"targets": [{"provider": "a"}]}, "strategy", "required"),
        (
            {
                "strategy": "loadbalance",
                "targets": [{"provider": "a", "weight": 1}, {"provider": "b", "weight": -1}],
            },
            "targets[1].weight",
            ">= 0",
        ),
        (
            {"strategy": "loadbalance", "targets": [{"provider": "a", "weight": "x"}]},
            "targets[0].weight",
            ">= 0",
        ),
        (
            {"strategy": "loadbalance", "targets": [{"provider": "a", "weight": 0}]},
            "targets[0].weight",
            "above 0",
        ),
        (
            {"strategy": "fallback", "targets": [{"provider": "a", "on_error": ["5xx"]}]},
            "targets[0].on_error",
            "unknown field",
        ),
        (
            {"strategy": "fallback", "targets": [{"provider": "a", "on_errors": ["oops"]}]},
            "targets[0].on_errors[0]",
            "unknown error class",
        ),
        (
            {"strategy": "fallback", "targets": [{"provider": "a", "on_errors": [200]}]},
            "targets[0].on_errors[0]",
            "400..599",
        ),
        ({"strategy": "fallback", "targets": []}, "targets", "non-empty"),
        ({"strategy": "fallback", "targets": [{"weight": 1}]}, "targets[0]", "needs a provider"),
        (
            {"strategy": "fallback", "targets": [{"provider": "a", "virtual_key": "vk"}]},
            "targets[0].virtual_key",
            "name a provider",
        ),
        (
            {"strategy": "single", "targets": [{"provider": "a"}, {"provider": "b"}]},
            "targets",
            "exactly one",
        ),
        ({"strategy": "fallback", "provider": "a"}, "targets", "needs a targets array"),
        ({"provider": "a", "retry": {"attempts": 11}}, "retry.attempts", "0..10"),
        (
            {"provider": "a", "retry": {"attempts": 2, "on_status_codes": [429, "500"]}},
            "retry.on_status_codes[1]",
            "status code",
        ),
        ({"provider": "a", "retry": {"tries": 2}}, "retry.tries", "unknown field"),
        (
            {"provider": "a", "retry": {"base_delay": 5, "max_delay": 1}},
            "retry.max_delay",
            "at least base_delay",
        ),
        ({"provider": "a", "timeout": 0}, "timeout", "above 0"),
        ({"provider": "a", "timeout": 1, "request_timeout": 1000}, "request_timeout", "not both"),
        (
            {"provider": "a", "override_params": {"messages": []}},
            "override_params.messages",
            "cannot be overridden",
        ),
        (
            {"strategy": "fallback", "targets": [{"provider": "a", "cache": {"mode": "simple"}}]},
            "targets[0].cache",
            "top level",
        ),
        ({"provider": "a", "cache": {"mode": "fuzzy"}}, "cache.mode", "simple or semantic"),
        (
            {
                "strategy": "fallback",
                "targets": [{"strategy": "fallback", "targets": [{"provider": "a", "weight": -3}]}],
            },
            "targets[0].targets[0].weight",
            ">= 0",
        ),
        ({"strategy": "conditional", "targets": [{"provider": "a"}]}, "strategy", "object form"),
        (
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"metadata.x": 1}, "then": "nope"}],
                },
                "targets": [{"name": "a", "provider": "a"}],
            },
            "strategy.conditions[0].then",
            "must name one of the targets",
        ),
        (
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"metadata.x": {"$like": 1}}, "then": "a"}],
                },
                "targets": [{"name": "a", "provider": "a"}],
            },
            "strategy.conditions[0].query.metadata.x.$like",
            "unknown operator",
        ),
        (
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"user.x": 1}, "then": "a"}],
                },
                "targets": [{"name": "a", "provider": "a"}],
            },
            "strategy.conditions[0].query.user.x",
            "unknown field",
        ),
        (
            {
                "strategy": "fallback",
                "targets": [{"name": "a", "provider": "a"}, {"name": "a", "provider": "b"}],
            },
            "targets[1].name",
            "duplicate",
        ),
        ({"strategy": "fallback", "weights": [{"provider": "a"}]}, "weights", "loadbalance form"),
    ],
)
def test_invalid_configs_name_the_field(config: Any, path: str, words: str) -> None:
    with pytest.raises(RouteConfigError) as info:
        parse_route_config(config)
    assert info.value.path == path, str(info.value)
    assert words in info.value.message


def test_nesting_depth_is_bounded() -> None:
    config: dict[str, Any] = {"provider": "a"}
    for _ in range(7):
        config = {"strategy": "fallback", "targets": [config]}
    with pytest.raises(RouteConfigError, match="nest at most"):
        parse_route_config(config)


def test_a_config_of_only_settings_is_one_target_for_the_requested_model() -> None:
    spec = parse_route_config({"cache": {"mode": "simple", "ttl": 60}, "retry": {"attempts": 2}})
    (leaf,) = spec.leaves()
    assert leaf.provider is None and leaf.model is None
    assert spec.cache == {"mode": "simple", "ttl": 60}
    assert leaf.retry.attempts == 2
