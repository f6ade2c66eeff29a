"""How each provider family turns its config struct and the environment into a spec.

Gaps are filled the way each provider's own SDK fills them (``AWS_REGION``,
``GEMINI_API_KEY``, a service-account file's ``project_id``); OpenAI-compatible presets
take their base URL, key variable and auth header from their preset row. Each function
here is one family's ``to_spec`` (see :mod:`llmrelay.providers.family`); none imports
an adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmrelay.config_error import ConfigError
from llmrelay.providers.base import ProviderSpec
from llmrelay.providers.config_types import (
    AzureConfig,
    BedrockConfig,
    ProviderConfig,
    VertexConfig,
    service_account_info,
)
from llmrelay.providers.presets import PRESETS

#: Azure OpenAI's current GA data-plane version (chat, embeddings, stream usage).
AZURE_API_VERSION = "2024-10-21"
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
VERTEX_LOCATION = "us-central1"


def _spec(
    cfg: ProviderConfig, base_url: str | None, api_key: str | None, **family: Any
) -> ProviderSpec:
    """The spec's common part from ``cfg``; ``family`` adds or overrides fields."""
    fields: dict[str, Any] = {
        "name": cfg.name,
        "type": cfg.type,
        "base_url": base_url or "",
        "api_key": api_key or None,
        "headers": tuple(cfg.headers.items()),
        "timeout": cfg.timeout,
        "connect_timeout": cfg.connect_timeout,
        "static_models": tuple(cfg.models),
        "drop_params": cfg.drop_params,
    }
    fields.update(family)
    return ProviderSpec(**fields)


def openai_compatible_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    """OpenAI-compatible hosts (and Anthropic): the preset row fills what ``cfg`` leaves."""
    preset = PRESETS.get(cfg.type)
    if preset is None:
        return _spec(cfg, cfg.base_url, cfg.api_key)
    base_url = cfg.base_url or (
        (env.get(preset.base_url_env) if preset.base_url_env else None) or preset.base_url
    )
    api_key = cfg.api_key
    if api_key is None and preset.key_env:
        api_key = env.get(preset.key_env)
    headers = dict(preset.extra_headers)
    headers.update(cfg.headers)
    return _spec(
        cfg,
        base_url,
        api_key,
        headers=tuple(headers.items()),
        auth_header=preset.auth_header,
        auth_prefix=preset.auth_prefix,
        stream_usage=preset.stream_usage,
        lists_models=preset.lists_models,
    )


def mock_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    """The in-process mock: its models are the configured ones (it lists none)."""
    return _spec(cfg, cfg.base_url, cfg.api_key, lists_models=False)


def gemini_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    key = cfg.api_key or env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
    return _spec(cfg, cfg.base_url or GEMINI_BASE_URL, key)


def azure_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    """Azure's data plane lists base models, not the deployment names callers route to,
    so Azure models come from the config's ``models`` list only."""
    assert isinstance(cfg, AzureConfig)
    return _spec(
        cfg,
        (cfg.base_url or "").rstrip("/"),
        cfg.api_key or env.get("AZURE_OPENAI_API_KEY"),
        api_version=cfg.api_version or AZURE_API_VERSION,
        lists_models=False,
    )


def vertex_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    assert isinstance(cfg, VertexConfig)
    project = cfg.project
    path = cfg.credentials_file or env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if project is None and path:
        info = service_account_info(path)
        project = info.get("project_id") or info.get("quota_project_id")
    project = project or env.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise ConfigError(
            f"invalid config: provider {cfg.name!r} (vertex) needs a project: set project, "
            "a credentials_file with project_id, or GOOGLE_CLOUD_PROJECT"
        )
    location = cfg.location or env.get("GOOGLE_CLOUD_LOCATION") or VERTEX_LOCATION
    host = (
        "aiplatform.googleapis.com"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )
    return _spec(
        cfg,
        (cfg.base_url or f"https://{host}/v1").rstrip("/"),
        None,
        project=project,
        location=location,
    )


def bedrock_spec(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    assert isinstance(cfg, BedrockConfig)
    region = cfg.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(
            f"invalid config: provider {cfg.name!r} (bedrock) needs a region: set region "
            "or AWS_REGION"
        )
    key_id = cfg.aws_access_key_id or env.get("AWS_ACCESS_KEY_ID")
    secret = cfg.aws_secret_access_key or env.get("AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        raise ConfigError(
            f"invalid config: provider {cfg.name!r} (bedrock) needs AWS credentials: set "
            "aws_access_key_id / aws_secret_access_key or AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY"
        )
    token = cfg.aws_session_token
    if token is None and cfg.aws_access_key_id is None:  # never mix file and env creds
        token = env.get("AWS_SESSION_TOKEN")
    return _spec(
        cfg,
        (cfg.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/"),
        None,
        region=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token or None,
    )
