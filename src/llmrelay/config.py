"""Settings: an optional YAML file, ``${ENV}`` interpolation, ``LLMRELAY_*`` overrides.

Loaded once at start and frozen. Unknown keys are rejected and every error names the
offending key (``providers[0].type``), because a typo in a gateway config should fail
the start, not silently fall back to a default in production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./llmrelay.db"


class ConfigError(Exception):
    """Invalid configuration; the message names the bad key and what to do."""


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = None
    #: Seconds for a whole non-streaming call, and the idle gap allowed between stream chunks.
    timeout: float = 600.0
    connect_timeout: float = 10.0
    #: Extra headers sent upstream on every call (e.g. OpenRouter's HTTP-Referer).
    headers: dict[str, str] = {}
    #: Model ids this provider offers, listed by ``GET /v1/models``.
    models: list[str] = []
    enabled: bool = True


class ModelRoute(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    provider: str
    model: str


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    database_url: str = DEFAULT_DATABASE_URL
    #: Admin secret; also the root of the key that encrypts provider credentials at rest.
    master_key: str | None = None
    providers: list[ProviderConfig] = []
    models: list[ModelRoute] = []
    aliases: dict[str, str] = {}
    #: The built-in offline ``mock`` provider (``mock/echo``).
    mock_provider: bool = True
    #: Enable preset providers whose usual env var (OPENAI_API_KEY, ...) is set.
    auto_providers: bool = True
    max_body_bytes: int = 4 * 1024 * 1024
    #: How long a key lookup is trusted; a revoked key stops working within this time.
    key_cache_ttl: float = 1.0
    log_level: str = "info"
    #: Where interaction logs go: "stdout", "stderr", "none" or a file path.
    log_file: str = "stdout"
    log_interactions: bool = True
    #: Include request and response bodies in interaction logs and the database.
    log_bodies: bool = False
    log_queue_size: int = 20000
    log_batch_size: int = 500
    log_flush_interval: float = 0.2
    #: Seconds a SIGTERM waits for in-flight requests before open streams are ended.
    drain_timeout: float = 10.0


#: Settings that can be set from ``LLMRELAY_<NAME>`` (scalars only).
_ENV_SCALARS = {
    f.name
    for f in msgspec.structs.fields(Settings)
    if f.name not in ("providers", "models", "aliases")
}

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            return ""

        return _INTERPOLATION.sub(repl, value)
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _readable_path(msg: str) -> str:
    """Turn msgspec's ``$.providers[0].type`` into ``providers[0].type``."""
    return msg.replace("`$.", "`").replace("`$`", "the top level")


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the frozen settings: file < environment < explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    path = config_file or env.get("LLMRELAY_CONFIG")
    if path:
        raw = interpolate(_read_yaml(Path(path)), env)
    for name in _ENV_SCALARS:
        value = env.get(f"LLMRELAY_{name.upper()}")
        if value is not None and value != "":
            raw[name] = value
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {_readable_path(str(exc))}") from exc
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    from llmrelay.providers.presets import PRESETS
    from llmrelay.providers.registry import ADAPTERS

    names: set[str] = set()
    for i, p in enumerate(s.providers):
        if p.name in names:
            raise ConfigError(f"invalid config: providers[{i}].name: duplicate provider {p.name!r}")
        if "/" in p.name or not p.name:
            raise ConfigError(
                f"invalid config: providers[{i}].name: {p.name!r} must be non-empty without '/'"
            )
        names.add(p.name)
        known = set(ADAPTERS)
        if p.type not in known:
            raise ConfigError(
                f"invalid config: providers[{i}].type: unknown provider type {p.type!r} "
                f"(one of: {', '.join(sorted(known))})"
            )
        if p.type == "openai_compatible" and not p.base_url:
            raise ConfigError(f"invalid config: providers[{i}].base_url is required for type "
                              "openai_compatible")
        if p.timeout <= 0 or p.connect_timeout <= 0:
            raise ConfigError(f"invalid config: providers[{i}].timeout must be positive")
    if s.mock_provider and "mock" in names:
        raise ConfigError("invalid config: providers: the name 'mock' is reserved for the built-in "
                          "mock provider (set mock_provider: false to use it yourself)")
    for i, m in enumerate(s.models):
        builtin = m.provider == "mock" and s.mock_provider
        if m.provider not in names and not builtin and m.provider not in PRESETS:
            raise ConfigError(
                f"invalid config: models[{i}].provider: no provider named {m.provider!r}"
            )
    for alias, target in s.aliases.items():
        if not target:
            raise ConfigError(f"invalid config: aliases.{alias}: empty target")
    if s.workers < 1:
        raise ConfigError("invalid config: workers must be >= 1")
    if not 1 <= s.port <= 65535:
        raise ConfigError(f"invalid config: port {s.port} is out of range")
    if s.max_body_bytes < 1024:
        raise ConfigError("invalid config: max_body_bytes must be at least 1024")
    if s.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"invalid config: log_level: unknown level {s.log_level!r}")
