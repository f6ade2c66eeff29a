"""Provider config as a tagged union on ``type``: one strict struct per family."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from llmrelay.config import ConfigError, load_settings
from llmrelay.providers.config_types import (
    CONFIG_TYPES,
    AnthropicConfig,
    AzureConfig,
    BedrockConfig,
    GeminiConfig,
    MockConfig,
    OpenAICompatibleConfig,
    ProviderConfig,
    VertexConfig,
    parse_provider,
    parse_providers,
    provider_config,
)
from llmrelay.providers.presets import PRESETS

COMMON = {
    "name",
    "base_url",
    "api_key",
    "timeout",
    "connect_timeout",
    "headers",
    "models",
    "enabled",
    "drop_params",
}


def fields(cls: type[ProviderConfig]) -> set[str]:
    return set(cls.__struct_fields__)


@pytest.mark.parametrize(
    ("entry", "cls", "own"),
    [
        ({"type": "openai_compatible", "base_url": "http://h/v1"}, OpenAICompatibleConfig, set()),
        ({"type": "anthropic"}, AnthropicConfig, set()),
        ({"type": "gemini", "api_key": "k"}, GeminiConfig, set()),
        ({"type": "mock"}, MockConfig, set()),
        (
            {"type": "vertex", "project": "p", "location": "global"},
            VertexConfig,
            {"project", "location", "credentials_file"},
        ),
        (
            {
                "type": "bedrock",
                "region": "us-east-1",
                "aws_access_key_id": "A",
                "aws_secret_access_key": "S",
                "aws_session_token": "T",
            },
            BedrockConfig,
            {"region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"},
        ),
        (
            {
                "type": "azure",
                "base_url": "https://r.openai.azure.com",
                "api_version": "2024-10-21",
            },
            AzureConfig,
            {"api_version"},
        ),
    ],
)
def test_each_family_has_its_own_struct(
    entry: dict[str, Any], cls: type[ProviderConfig], own: set[str]
) -> None:
    cfg = parse_provider({"name": "p", **entry})
    assert type(cfg) is cls and cfg.type == entry["type"]
    assert fields(cls) == COMMON | own
    for key, value in entry.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"anthropic"}))
def test_every_preset_is_an_openai_compatible_type_with_the_common_fields(preset: str) -> None:
    cfg = parse_provider({"name": "p", "type": preset, "api_key": "k", "timeout": "30"})
    assert cfg.type == preset and cfg.timeout == 30.0
    assert fields(type(cfg)) == COMMON
    with pytest.raises(ConfigError, match=re.escape(f"p.region: not allowed for type {preset!r}")):
        parse_provider({"name": "p", "type": preset, "region": "x"}, "p")


def test_every_type_decodes_to_its_tag() -> None:
    for kind, cls in CONFIG_TYPES.items():
        assert cls.__struct_config__.tag == kind
        entry: dict[str, Any] = {"name": "p", "type": kind, "base_url": "https://h"}
        assert type(parse_provider(entry)) is cls


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "a", "type": "openai", "regoin": "x"},
            "providers[1].regoin: not allowed for type 'openai' (known keys: api_key, base_url",
        ),
        (
            {"name": "a", "type": "bedrock", "project": "x"},
            "providers[1].project: not allowed for type 'bedrock' (only provider type vertex reads",
        ),
        (
            {"name": "a", "type": "vertex", "api_version": "1"},
            "providers[1].api_version: not allowed for type 'vertex' (only provider type azure",
        ),
        ({"name": "a"}, "providers[1].type: missing (one of: anthropic, azure, bedrock"),
        ({"name": "a", "type": "opneai"}, "providers[1].type: unknown provider type 'opneai'"),
        ({"name": "a", "type": 3}, "providers[1].type: unknown provider type 3"),
        (
            {"name": "a", "type": "groq", "timeout": "soon"},
            "providers[1].timeout: Expected float, got str",
        ),
        ({"name": "a", "type": "groq", "headers": {"x": 1}}, "providers[1].headers"),
        ({"name": "a", "type": "groq", "timeout": 0}, "providers[1].timeout: timeout and"),
        ({"name": "a/b", "type": "groq"}, "providers[1].name: 'a/b' must be non-empty"),
        ({"name": "", "type": "groq"}, "providers[1].name"),
        (
            {"name": "a", "type": "openai_compatible"},
            "providers[1].base_url is required for type openai_compatible",
        ),
        ({"name": "a", "type": "azure"}, "providers[1].base_url is required for type azure"),
        (
            {"name": "a", "type": "bedrock", "aws_secret_access_key": "s"},
            "providers[1].aws_access_key_id and aws_secret_access_key must be given together",
        ),
        ("groq", "providers[1]: expected a mapping"),
    ],
)
def test_a_bad_entry_is_named_by_its_path(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"invalid config: {message}")):
        parse_providers([{"name": "ok", "type": "groq"}, entry])


def test_duplicate_names_and_a_non_list_are_rejected() -> None:
    with pytest.raises(ConfigError, match=re.escape("providers[1].name: duplicate provider 'a'")):
        parse_providers([{"name": "a", "type": "groq"}, {"name": "a", "type": "openai"}])
    with pytest.raises(ConfigError, match="providers: expected a list"):
        parse_providers({"name": "a", "type": "groq"})


def test_a_yaml_file_with_every_family_loads(tmp_path: Path) -> None:
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({"type": "authorized_user"}))
    entries = [
        {"name": "oa", "type": "openai", "api_key": "${KEY}", "models": ["gpt-4o"]},
        {
            "name": "local",
            "type": "openai_compatible",
            "base_url": "http://127.0.0.1:1/v1",
            "headers": {"X-A": "1"},
            "timeout": "30",
        },
        {"name": "g", "type": "groq"},
        {"name": "o", "type": "ollama", "enabled": False},
        {"name": "an", "type": "anthropic", "drop_params": True},
        {"name": "ge", "type": "gemini"},
        {"name": "v", "type": "vertex", "project": "p", "credentials_file": str(sa)},
        {"name": "b", "type": "bedrock", "region": "eu-west-1"},
        {"name": "az", "type": "azure", "base_url": "https://r.openai.azure.com"},
    ]
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"providers": entries, "mock_provider": True}))
    s = load_settings(path, env={"KEY": "sk-1"})
    assert [p.type for p in s.providers] == [e["type"] for e in entries]
    assert s.providers[0].api_key == "sk-1" and s.providers[1].timeout == 30.0
    assert isinstance(s.providers[7], BedrockConfig) and s.providers[7].region == "eu-west-1"


def test_the_mock_name_stays_reserved(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"providers": [{"name": "mock", "type": "mock"}]}))
    with pytest.raises(ConfigError, match="reserved"):
        load_settings(path, env={})
    path.write_text(
        json.dumps({"providers": [{"name": "mock", "type": "mock"}], "mock_provider": False})
    )
    assert load_settings(path, env={}).providers[0].type == "mock"


def test_configs_built_in_code() -> None:
    cfg = provider_config("bedrock", name="b", region="r")
    assert isinstance(cfg, BedrockConfig) and cfg.type == "bedrock"
    with pytest.raises(ConfigError, match="unknown provider type 'nope'"):
        provider_config("nope", name="x")
    with pytest.raises(TypeError):  # a field of another family is no keyword here
        provider_config("openai", name="x", region="r")


def test_credentials_stay_out_of_repr() -> None:
    cfg = provider_config(
        "bedrock",
        name="b",
        api_key="sk-live",
        aws_access_key_id="AKID",
        aws_secret_access_key="top-secret",
        aws_session_token="sess-9f3",
    )
    shown = repr(cfg)
    assert not any(secret in shown for secret in ("sk-live", "AKID", "top-secret", "sess-9f3"))
    assert "name='b'" in shown and "api_key=***" in shown
    assert "api_key=None" in repr(provider_config("groq", name="g"))
