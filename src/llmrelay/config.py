"""Settings: an optional YAML file, ``${ENV}`` interpolation, ``LLMRELAY_*`` overrides.

Loaded once at start and frozen. Unknown keys are rejected and every error names the
offending key (``providers[0].type``), because a typo in a gateway config should fail
the start, not silently fall back to a default in production. Provider entries are a
tagged union on ``type`` whose structs and checks live in
:mod:`llmrelay.providers.config_types` (a leaf: no adapter is imported from here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from llmrelay.config_checks import check
from llmrelay.config_error import ConfigError
from llmrelay.providers.config_types import ProviderConfig, parse_providers

__all__ = ["ConfigError", "ModelRoute", "ProviderConfig", "Settings", "load_settings"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./llmrelay.db"


class ModelRoute(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    provider: str
    model: str


class PriceOverride(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A model's prices in USD per token (the LiteLLM catalog's field names)."""

    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    cache_read_input_token_cost: Decimal | None = None
    cache_creation_input_token_cost: Decimal | None = None


class CircuitBreakerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Skip a target that failed ``failure_threshold`` times within ``window`` seconds."""

    enabled: bool = True
    failure_threshold: int = 5
    window: float = 60.0
    #: Seconds a tripped target is skipped before one probe call is let through.
    cooldown: float = 30.0


class RoutingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Name of the route config for requests that bring none (and whose key has none).
    default_config: str | None = None
    #: An upstream ``retry-after`` longer than this many seconds is not waited for.
    retry_after_cap: float = 60.0
    #: Seconds between background re-reads of the route_configs table (0: read at start
    #: only); a config set while the gateway runs applies within this time.
    config_cache_ttl: float = 5.0
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()


class ResponseCacheSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the response cache keeps entries (which calls use it: docs/cache.md)."""

    #: "auto": Redis when ``redis_url`` (or ``response_cache.redis_url``) is set, else
    #: this process's memory; "memory"; "redis".
    backend: str = "auto"
    #: Redis for the cache only; default: ``redis_url``.
    redis_url: str | None = None
    #: Bytes the in-process LRU may hold (keys and entries).
    max_bytes: int = 256 * 1024 * 1024
    #: Largest answer stored (an encoded entry); bigger ones are served and not kept.
    max_entry_bytes: int = 4 * 1024 * 1024
    #: Semantic mode's embeddings model (``provider/model``) when a cache block names none.
    embedding_model: str | None = None
    #: Seconds an embedding may take; past it the call is looked up exactly.
    embedding_timeout: float = 2.0
    #: Questions the in-process semantic index holds (oldest dropped first).
    max_vectors: int = 100_000
    #: Questions kept per context (same system prompt, history, model ...): each search
    #: scans them all, ~16 µs per 384-dimension question (bench/semantic_cost.py).
    max_vectors_per_context: int = 1000
    #: Share semantic questions between instances through the database (cache_vectors),
    #: each instance reading new ones every ``vector_sync_interval`` seconds.
    shared_vectors: bool = False
    vector_sync_interval: float = 1.0
    #: Add seed 004's ``metadata: {cache_hit, provider, cost_usd}`` to non-streamed chat
    #: completion bodies of calls the cache takes part in.
    metadata: bool = False


class ProbeSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``llmrelay probe``'s defaults (docs/probe.md); its flags override them."""

    #: Models tried per provider: the first N chat models of its list.
    max_models_per_gateway: int = 3
    #: Seconds one tier of one model may take (a 429's retry-after wait included).
    timeout_seconds: float = 30.0
    test_message: str = 'Respond with: "Test successful"'
    #: Enough for a reasoning model that spends tokens before it answers (a budget of
    #: 1 fails those); reasoning is asked to be minimal where the provider allows it.
    max_tokens: int = 50
    temperature: float = 0.7
    #: Calls in flight per provider, so a local Ollama is not stampeded.
    concurrency: int = 2


class AdminSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The admin API (``/admin``, docs/admin.md)."""

    #: Build the admin API in a thread once start-up is complete, so the first admin call
    #: does not wait for it (about 1 s of CPU: FastAPI's import and the routes). Off: the
    #: first admin call builds it. The test suite turns it off for the gateways it starts
    #: that never call ``/admin`` (on a 2-core CI machine that second per start slowed
    #: every test running beside it); a production gateway keeps it on.
    warm_up: bool = True


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
    #: Largest non-streamed upstream answer read (a bigger one is a 502): answers are
    #: held in memory whole, and a 200 MB one took 700 MB of RSS before this cap.
    max_upstream_body_bytes: int = 32 * 1024 * 1024
    #: Largest single upstream stream event (or unterminated line) buffered.
    max_upstream_event_bytes: int = 16 * 1024 * 1024
    #: How long a key lookup is trusted; a revoked key stops working within this time.
    key_cache_ttl: float = 1.0
    #: A seed-002 ``keys.json`` imported at start (idempotent; ``KEYS_FILE_PATH`` too).
    keys_file: str | None = None
    #: Seconds an unknown key is remembered as unknown (no database query meanwhile).
    key_negative_cache_ttl: float = 5.0
    #: Seconds a key seen before keeps working while the database is unavailable.
    key_stale_ttl: float = 300.0
    #: Lookups of uncached keys running at once; more wait up to ``key_lookup_wait``
    #: seconds for a slot, then get a 503 (a flood of random keys stays bounded).
    key_lookup_concurrency: int = 8
    key_lookup_wait: float = 0.5
    #: Accept API keys of any shape (seed 000's ``test-key-12345``, keys imported from
    #: another gateway), looked up by their SHA-256 like llmrelay's own. Off: a key not
    #: shaped like ``generate_key()``'s is refused without a database query.
    key_any_shape: bool = False
    #: Route a bare model name found in the price catalog (the ``models`` table) to the
    #: one enabled provider whose type or name is its ``litellm_provider`` (seed 000's
    #: gateway does: ``gpt-4`` goes to the ``openai`` provider). Off: bare names route
    #: only through ``models``, aliases and route configs.
    route_by_catalog: bool = False
    #: Seconds any database operation on the request path or in readiness may take.
    database_timeout: float = 2.0
    #: Bearer token for ``/metrics`` and the detail of ``/health/ready`` (the master key
    #: works too). With neither set, both are open (see THREAT_MODEL.md).
    metrics_token: str | None = None
    #: Label the rate-limit and budget rejection series with the key's name (one series
    #: per key: only where the number of keys is bounded). See docs/observability.md.
    metrics_key_labels: bool = False
    #: OpenTelemetry traces over OTLP/HTTP (``pip install llmrelay[otel]``), configured
    #: by the standard ``OTEL_*`` variables: see docs/observability.md.
    tracing: bool = False
    #: Record prompts and answers (redacted) on the call spans.
    tracing_record_content: bool = False
    log_level: str = "info"
    #: Where interaction logs go: "stdout", "stderr", "none" or a file path.
    log_file: str = "stdout"
    log_interactions: bool = True
    #: Include request and response bodies in interaction logs and the database.
    log_bodies: bool = False
    log_queue_size: int = 20000
    log_batch_size: int = 500
    log_flush_interval: float = 0.2
    #: Directory of the log spool: rows not yet in the database, written there first and
    #: replayed at the next start. Empty: ``<database file>.spool`` beside a SQLite
    #: database, else ``llmrelay-spool`` in the working directory.
    log_spool_dir: str = ""
    #: Seconds between spool appends (each followed by an ``fsync``): the most a SIGKILL
    #: can lose.
    log_spool_interval: float = 0.05
    #: Bytes the spool may hold while the database is away; past it new rows are dropped
    #: and counted.
    log_spool_max_bytes: int = 1024**3
    #: Seconds any database operation of the log writer may take before it is abandoned.
    log_db_timeout: float = 10.0
    #: Seconds a SIGTERM gives in-flight calls before they are ended (with an error).
    drain_timeout: float = 10.0
    # -- what a client connection may hold (http_protocol.py, docs/operations.md) -------
    #: Seconds a client has to send a request's line and headers (slowloris guard).
    header_timeout: float = 10.0
    #: Seconds a client has to send a model call's body once its headers are in.
    body_timeout: float = 60.0
    #: Largest request line + headers, and most headers, accepted (431 beyond).
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    #: Seconds an idle kept-alive connection stays open: above the 60 s idle timeout of
    #: common load balancers, so the gateway never closes a connection they reuse.
    keep_alive_timeout: float = 75.0
    #: Open client connections per worker; one more gets 503 (lowered to fit the
    #: process's file-descriptor limit).
    max_connections: int = 2048
    #: Origins a browser application may call the proxy routes from (cors.py):
    #: ``https://app.example.com``, ``https://*.example.com`` or ``*``; empty: none.
    #: ``LLMRELAY_CORS_ORIGINS`` takes a comma-separated list.
    cors_origins: list[str] = []
    #: Seconds a browser may cache a preflight's answer.
    cors_max_age: int = 600
    #: Redis shared by every instance (limits, budgets, circuit breakers); unset:
    #: in-process state.
    redis_url: str | None = None
    #: Named route configs (see docs/routing.md), usable by name in the config header,
    #: as a request's model, as a key's default, or as ``routing.default_config``.
    route_configs: dict[str, dict[str, Any]] = {}
    routing: RoutingSettings = RoutingSettings()
    #: Seconds between background refreshes of each provider's model list (0: never);
    #: accepts durations like ``5m`` (seed 000's ``PROVIDER_RELOAD_INTERVAL``).
    provider_reload_interval: float = 300.0
    # -- governance: limits, budgets, prices (docs/operations.md) ----------------------
    #: When Redis is unreachable: "open" serves calls uncounted, "closed" answers 503.
    redis_fail_mode: str = "open"
    #: Seconds Redis may take per command before it counts as down.
    redis_timeout: float = 0.25
    #: Seconds between probes while Redis is down.
    redis_retry_interval: float = 1.0
    #: Prefix of every governance key in Redis (a hash tag keeps them in one slot).
    redis_prefix: str = "{llmrelay}:"
    #: Rate limits on or off (seed 002's ``QUOTA_ENABLED``); budgets apply either way.
    limits_enabled: bool = True
    #: Limits for keys that set none of their own (``QUOTA_LIMIT`` maps to default_rph).
    default_rpm: int | None = None
    default_rph: int | None = None
    default_tpm: int | None = None
    #: Completion tokens a call without ``max_tokens`` reserves (budget and TPM) when
    #: neither ``reserve_output_tokens`` nor the learnt estimate has a value for it.
    default_max_tokens: int = 1024
    #: Completion tokens reserved by calls without ``max_tokens``, per model (the
    #: requested name or ``provider/model``; ``*`` globs allowed). See docs/operations.md.
    reserve_output_tokens: dict[str, int] = {}
    #: Reserve, for calls without ``max_tokens``, the 95th percentile of the model's
    #: recent completions (its last 200, once 20 are seen) instead of default_max_tokens.
    reserve_learn: bool = True
    #: Seconds a budget reservation outlives a call that never settles (crashed instance).
    reservation_ttl: float = 900.0
    #: Per-model price overrides, USD per token, by catalog name or ``provider/model``.
    prices: dict[str, PriceOverride] = {}
    #: Plug-ins every call gets, by name, with their options (see docs/plugins.md).
    plugins: dict[str, dict[str, Any]] = {}
    #: The response cache's store (see docs/cache.md).
    response_cache: ResponseCacheSettings = ResponseCacheSettings()
    #: ``llmrelay probe``'s defaults (see docs/probe.md).
    probe: ProbeSettings = ProbeSettings()
    #: The admin API's start-up behaviour.
    admin: AdminSettings = AdminSettings()


#: Settings that can be set from ``LLMRELAY_<NAME>`` (scalars only).
_ENV_SCALARS = {
    f.name
    for f in msgspec.structs.fields(Settings)
    if f.name
    not in (
        "providers",
        "models",
        "aliases",
        "route_configs",
        "routing",
        "prices",
        "reserve_output_tokens",
        "plugins",
        "response_cache",
        "cors_origins",
        "admin",
    )
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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any, key: str) -> float:
    """``300``, ``"300"``, ``"30s"``, ``"5m"``, ``"1h"`` -> seconds (Go-style units, one)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ConfigError(
                f"invalid config: {key}: {value!r} is not a duration (e.g. 300, 30s, 5m, 1h)"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds < 0:
        raise ConfigError(f"invalid config: {key} must not be negative")
    return seconds


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
    origins = env.get("LLMRELAY_CORS_ORIGINS")
    if origins:
        raw["cors_origins"] = [o.strip() for o in origins.split(",") if o.strip()]
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    seed_interval = env.get("PROVIDER_RELOAD_INTERVAL")
    if seed_interval and "LLMRELAY_PROVIDER_RELOAD_INTERVAL" not in env:
        raw["provider_reload_interval"] = seed_interval
    if "provider_reload_interval" in raw:
        raw["provider_reload_interval"] = duration_seconds(
            raw["provider_reload_interval"], "provider_reload_interval"
        )
    _seed_quota_env(env, raw)
    seed_keys = env.get("KEYS_FILE_PATH")  # seed 002's name for it
    if seed_keys and "LLMRELAY_KEYS_FILE" not in env and "keys_file" not in raw:
        raw["keys_file"] = seed_keys
    providers = parse_providers(raw.pop("providers")) if "providers" in raw else []
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {_readable_path(str(exc))}") from exc
    settings = msgspec.structs.replace(settings, providers=providers)
    check(settings)
    return settings


def _seed_quota_env(env: Mapping[str, str], raw: dict[str, Any]) -> None:
    """Seed 002's switches: ``QUOTA_ENABLED`` (default true there) and ``QUOTA_LIMIT``
    (requests per hour per key, default 100 there) map onto ``limits_enabled`` and
    ``default_rph``; the ``LLMRELAY_*`` names win when both are set."""
    enabled = env.get("QUOTA_ENABLED", "").strip().lower()
    limit = env.get("QUOTA_LIMIT", "").strip()
    if enabled and "LLMRELAY_LIMITS_ENABLED" not in env:
        raw["limits_enabled"] = enabled
    if "LLMRELAY_DEFAULT_RPH" not in env:
        if limit:
            raw["default_rph"] = limit
        elif enabled in ("1", "true", "yes", "on"):
            raw.setdefault("default_rph", 100)
