from __future__ import annotations

import pytest

from llmrelay.config import load_settings
from llmrelay.errors import PermissionDenied, UnknownModel
from llmrelay.providers.mock import MockTransport
from llmrelay.providers.registry import build_registry
from llmrelay.routing.resolve import Resolver, check_allowed
from llmrelay.upstream import HttpTransport


def make(env: dict[str, str] | None = None) -> Resolver:
    settings = load_settings(
        env={},
        overrides={
            "providers": [
                {"name": "openrouter", "type": "openrouter", "api_key": "k"},
                {"name": "main", "type": "openai", "api_key": "k"},
            ],
            "models": [{"name": "fast", "provider": "main", "model": "gpt-4o-mini"}],
            "aliases": {"my-gpt4": "main/gpt-4o", "chain": "my-gpt4", "loop": "loop"},
        },
    )
    registry = build_registry(settings, env or {}, HttpTransport(), MockTransport())
    return Resolver(
        registry, {m.name: (m.provider, m.model) for m in settings.models}, dict(settings.aliases)
    )


def test_provider_prefix_keeps_slashes_in_model_ids() -> None:
    t = make().resolve("openrouter/openai/gpt-4o")
    assert (t.provider.name, t.model) == ("openrouter", "openai/gpt-4o")


def test_routes_then_aliases_then_unknown() -> None:
    r = make()
    assert r.resolve("fast").qualified == "main/gpt-4o-mini"
    assert r.resolve("my-gpt4").qualified == "main/gpt-4o"
    assert r.resolve("chain").qualified == "main/gpt-4o"
    for name in ("gpt-99", "loop", "nobody/x", "main/"):
        with pytest.raises(UnknownModel, match=f"unknown model: {name}"):
            r.resolve(name)


def test_builtin_mock_and_env_enabled_presets() -> None:
    assert make().resolve("mock/echo").provider.spec.type == "mock"
    r = make({"GROQ_API_KEY": "gk"})
    t = r.resolve("groq/llama-3.1-8b-instant")
    assert t.provider.spec.base_url == "https://api.groq.com/openai/v1"
    assert t.provider.spec.api_key == "gk"


def test_model_permissions() -> None:
    r = make()
    target = r.resolve("fast")
    check_allowed(None, target)
    check_allowed(("fast",), target, ("fast",))
    check_allowed(("main/*",), target)
    with pytest.raises(PermissionDenied):
        check_allowed(("mock/*",), target, ("fast",))


def test_an_allowed_name_admits_only_the_target_it_resolves_to() -> None:
    r = make()
    fast, other = r.resolve("fast"), r.resolve("main/gpt-4o")
    assert r.resolves_to("fast", fast) and not r.resolves_to("fast", other)
    assert r.resolves_to("chain", other) and not r.resolves_to("nobody", other)
    with pytest.raises(PermissionDenied, match="main/gpt-4o"):
        check_allowed(("fast",), other)


def test_catalog_names_route_only_when_set_and_unambiguous() -> None:
    r = make()
    with pytest.raises(UnknownModel):
        r.resolve("gpt-4")  # off by default: bare names never guessed
    r.set_catalog(
        {
            "gpt-4": frozenset({"openai"}),  # the one provider of type openai
            "deepseek-chat": frozenset({"deepseek"}),  # no such provider
            "llama-3": frozenset({"openai", "openrouter"}),  # two candidates
            "fast": frozenset({"openrouter"}),  # a configured route comes first
        }
    )
    assert r.resolve("gpt-4").qualified == "main/gpt-4"
    assert r.resolve("fast").qualified == "main/gpt-4o-mini"
    for name in ("deepseek-chat", "llama-3"):
        with pytest.raises(UnknownModel):
            r.resolve(name)
    # An allow-list of the bare name admits what it resolved to, and nothing else.
    assert r.resolves_to("gpt-4", r.resolve("main/gpt-4"))
    assert not r.resolves_to("gpt-4", r.resolve("main/gpt-4o"))
