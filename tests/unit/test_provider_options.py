"""Config of the native provider families: checks, environment defaults, durations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmrelay.config import ConfigError, load_settings
from llmrelay.providers.config_types import provider_config as cfg_of
from llmrelay.providers.registry import spec_from_config


def test_reload_interval_accepts_seed_durations() -> None:
    assert load_settings(env={}).provider_reload_interval == 300
    assert load_settings(env={"PROVIDER_RELOAD_INTERVAL": "5m"}).provider_reload_interval == 300
    assert (
        load_settings(
            env={"LLMRELAY_PROVIDER_RELOAD_INTERVAL": "30s", "PROVIDER_RELOAD_INTERVAL": "5m"}
        ).provider_reload_interval
        == 30
    )
    assert (
        load_settings(env={}, overrides={"provider_reload_interval": "1h"}).provider_reload_interval
        == 3600
    )
    assert (
        load_settings(env={}, overrides={"provider_reload_interval": 0}).provider_reload_interval
        == 0
    )
    with pytest.raises(ConfigError, match="provider_reload_interval: 'soon' is not a duration"):
        load_settings(env={"PROVIDER_RELOAD_INTERVAL": "soon"})


def _load(tmp_path: Path, provider: dict[str, object]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"providers": [provider]}))
    load_settings(path, env={})


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (
            {"name": "x", "type": "openai", "region": "us-east-1"},
            "providers[0].region: not allowed for type 'openai' "
            "(only provider type bedrock reads it)",
        ),
        (
            {"name": "x", "type": "gemini", "api_version": "1"},
            "providers[0].api_version: not allowed for type 'gemini' (only provider type azure",
        ),
        ({"name": "x", "type": "azure"}, "providers[0].base_url is required for type azure"),
        (
            {"name": "x", "type": "bedrock", "aws_access_key_id": "AKID"},
            "aws_access_key_id and aws_secret_access_key must be given together",
        ),
        (
            {"name": "x", "type": "vertex", "credentials_file": "/nonexistent/sa.json"},
            "providers[0].credentials_file: cannot read /nonexistent/sa.json",
        ),
    ],
)
def test_family_fields_are_checked(
    tmp_path: Path, provider: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, provider)


def test_vertex_credentials_file_must_be_a_google_file(tmp_path: Path) -> None:
    bad = tmp_path / "sa.json"
    bad.write_text(json.dumps({"type": "service_account", "client_email": "a@b"}))
    with pytest.raises(ConfigError, match="lacks private_key, token_uri"):
        _load(tmp_path, {"name": "v", "type": "vertex", "credentials_file": str(bad)})


def test_environment_defaults() -> None:
    env = {
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_SESSION_TOKEN": "tok",
        "GEMINI_API_KEY": "gk",
        "AZURE_OPENAI_API_KEY": "ak",
        "GOOGLE_CLOUD_PROJECT": "proj",
    }
    bedrock = spec_from_config(cfg_of("bedrock", name="b"), env)
    assert bedrock.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert (bedrock.region, bedrock.aws_access_key_id, bedrock.aws_session_token) == (
        "eu-west-1",
        "AKID",
        "tok",
    )
    assert "tok" not in repr(bedrock) and "'s'" not in repr(bedrock)
    gemini = spec_from_config(cfg_of("gemini", name="g"), env)
    assert gemini.api_key == "gk" and gemini.base_url.endswith("googleapis.com/v1beta")
    vertex = spec_from_config(cfg_of("vertex", name="v", location="global"), env)
    assert vertex.base_url == "https://aiplatform.googleapis.com/v1"
    assert (vertex.project, vertex.location) == ("proj", "global")
    azure = spec_from_config(cfg_of("azure", name="a", base_url="https://r.x/"), env)
    assert (azure.api_key, azure.api_version, azure.lists_models) == ("ak", "2024-10-21", False)


def test_missing_region_credentials_project_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="needs a region"):
        spec_from_config(cfg_of("bedrock", name="b"), {})
    with pytest.raises(ConfigError, match="needs AWS credentials"):
        spec_from_config(cfg_of("bedrock", name="b", region="us-east-1"), {})
    with pytest.raises(ConfigError, match="needs a project"):
        spec_from_config(cfg_of("vertex", name="v"), {})


def test_family_fields_survive_a_provider_row() -> None:
    from llmrelay.providers.stored import restored_fields, stored_fields

    cfg = cfg_of(
        "bedrock",
        name="b",
        region="us-west-2",
        drop_params=True,
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
    )
    config, secrets = stored_fields(cfg)
    assert "secret" not in json.dumps(config)  # secrets go to the encrypted column only
    back = cfg_of("bedrock", name="b", **restored_fields(config, secrets))
    assert back == cfg
