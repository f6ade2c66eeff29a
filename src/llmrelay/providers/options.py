"""Provider-family config fields: which types use them, their checks and defaults.

``ProviderConfig`` is one flat struct for every provider type; this module says which
of its family-specific fields (``api_version``, ``region``, ``project``, ...) each native
type reads, rejects them on types that would silently ignore them, and fills the gaps
from the environment the way each provider's own SDK does (``AWS_REGION``,
``GEMINI_API_KEY``, a service-account file's ``project_id``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrelay.config import ConfigError, ProviderConfig

#: Azure OpenAI's current GA data-plane version (chat, embeddings, stream usage).
AZURE_API_VERSION = "2024-10-21"
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
VERTEX_LOCATION = "us-central1"

_FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "api_version": ("azure",),
    "region": ("bedrock",),
    "aws_access_key_id": ("bedrock",),
    "aws_secret_access_key": ("bedrock",),
    "aws_session_token": ("bedrock",),
    "project": ("vertex",),
    "location": ("vertex",),
    "credentials_file": ("vertex",),
}


def check_provider(cfg: ProviderConfig) -> str | None:
    """A problem with the family fields of one provider entry (``field: what``), or None."""
    for name, types in _FAMILY_FIELDS.items():
        if getattr(cfg, name) is not None and cfg.type not in types:
            return f"{name} is only read by provider type {' / '.join(types)}, not {cfg.type!r}"
    if cfg.type == "azure" and not cfg.base_url:
        return ("base_url is required for type azure: the resource endpoint, "
                "e.g. https://NAME.openai.azure.com")
    if cfg.type == "bedrock" and (cfg.aws_access_key_id is None) != (
        cfg.aws_secret_access_key is None
    ):
        return "aws_access_key_id and aws_secret_access_key must be given together"
    if cfg.type == "vertex" and cfg.credentials_file is not None:
        try:
            service_account_info(cfg.credentials_file)
        except ConfigError as exc:
            return f"credentials_file: {exc}"
    return None


def service_account_info(path: str) -> dict[str, Any]:
    """The parsed Google credentials JSON file, or a ConfigError saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ConfigError(f"{path} is not a Google credentials file (no 'type' field)")
    if data["type"] == "service_account":
        missing = [k for k in ("client_email", "private_key", "token_uri") if not data.get(k)]
        if missing:
            raise ConfigError(f"{path}: service account file lacks {', '.join(missing)}")
    return data


@dataclass(frozen=True, slots=True)
class FamilyFields:
    """What ``spec_from_config`` needs beyond the OpenAI-compatible fields."""

    base_url: str
    api_key: str | None
    api_version: str | None = None
    region: str | None = None
    project: str | None = None
    location: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    lists_models: bool = True

    def spec_fields(self) -> dict[str, Any]:
        """The ``ProviderSpec`` keyword arguments this family sets."""
        return {
            "api_version": self.api_version, "region": self.region, "project": self.project,
            "location": self.location, "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
            "aws_session_token": self.aws_session_token,
        }


def family_fields(cfg: ProviderConfig, env: Mapping[str, str]) -> FamilyFields | None:
    """Defaults for the native types (None for OpenAI-compatible ones)."""
    if cfg.type == "gemini":
        key = cfg.api_key or env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
        return FamilyFields(base_url=cfg.base_url or GEMINI_BASE_URL, api_key=key)
    if cfg.type == "vertex":
        return _vertex(cfg, env)
    if cfg.type == "bedrock":
        return _bedrock(cfg, env)
    if cfg.type == "azure":
        key = cfg.api_key or env.get("AZURE_OPENAI_API_KEY")
        # The data plane lists base models, not the deployment names callers route
        # to, so Azure models come from the config's ``models`` list only.
        return FamilyFields(
            base_url=(cfg.base_url or "").rstrip("/"), api_key=key,
            api_version=cfg.api_version or AZURE_API_VERSION, lists_models=False,
        )
    return None


def _vertex(cfg: ProviderConfig, env: Mapping[str, str]) -> FamilyFields:
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
        "aiplatform.googleapis.com" if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )
    return FamilyFields(
        base_url=(cfg.base_url or f"https://{host}/v1").rstrip("/"), api_key=None,
        project=project, location=location,
    )


def _bedrock(cfg: ProviderConfig, env: Mapping[str, str]) -> FamilyFields:
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
    if token is None and cfg.aws_access_key_id is None:
        token = env.get("AWS_SESSION_TOKEN")
    return FamilyFields(
        base_url=(cfg.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/"),
        api_key=None, region=region, aws_access_key_id=key_id,
        aws_secret_access_key=secret, aws_session_token=token or None,
    )


#: Family fields kept in a provider row's plain ``config`` / its encrypted credentials.
_STORED_CONFIG = ("api_version", "region", "project", "location", "credentials_file",
                  "drop_params")
_STORED_SECRETS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def stored_fields(cfg: ProviderConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, secrets)`` of the family fields to keep in a provider row."""
    config = {k: getattr(cfg, k) for k in _STORED_CONFIG if getattr(cfg, k) not in (None, False)}
    secrets = {k: getattr(cfg, k) for k in _STORED_SECRETS if getattr(cfg, k)}
    return config, secrets


def restored_fields(config: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """``ProviderConfig`` keyword arguments back from a provider row."""
    out = {k: config[k] for k in _STORED_CONFIG if k in config}
    out.update({k: secrets[k] for k in _STORED_SECRETS if k in secrets})
    return out
