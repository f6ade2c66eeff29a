"""The settings' cross-field checks, run by :func:`llmrelay.config.load_settings` once the
file, the environment and the flags are merged and typed.

msgspec checks each field's type; what is checked here is what one field cannot say
alone: values in range, names that must refer to something configured (a model's
provider, an alias's target), combinations that would run but do the wrong thing
(several workers without Redis would each allow a key's whole limit). Each failure is
a :class:`~llmrelay.config_error.ConfigError` naming the setting, so a bad file stops
the start with one clear line rather than a traceback later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.config_error import ConfigError
from llmrelay.providers.config_types import PRESET_NAMES

if TYPE_CHECKING:
    from llmrelay.config import Settings


def _check_governance(s: Settings) -> None:
    if s.workers > 1 and not s.redis_url:
        raise ConfigError(
            f"invalid config: workers: {s.workers} worker processes need redis_url "
            "(LLMRELAY_REDIS_URL), because rate limits and budgets are counted in process "
            "and each worker would allow the full limit; set redis_url, or run one worker"
        )
    if s.redis_fail_mode not in ("open", "closed"):
        raise ConfigError(
            f"invalid config: redis_fail_mode: {s.redis_fail_mode!r} must be 'open' or 'closed'"
        )
    if s.redis_timeout <= 0 or s.redis_retry_interval <= 0 or s.reservation_ttl <= 0:
        raise ConfigError(
            "invalid config: redis_timeout, redis_retry_interval and "
            "reservation_ttl must be positive"
        )
    for name in ("default_rpm", "default_rph", "default_tpm", "default_max_tokens"):
        value = getattr(s, name)
        if value is not None and value < 0:
            raise ConfigError(f"invalid config: {name} must not be negative")
    for model, tokens in s.reserve_output_tokens.items():
        if tokens < 1:
            raise ConfigError(
                f"invalid config: reserve_output_tokens.{model}: {tokens} must "
                "be positive (completion tokens to reserve)"
            )
    for model, price in s.prices.items():
        values = [
            price.input_cost_per_token,
            price.output_cost_per_token,
            price.cache_read_input_token_cost,
            price.cache_creation_input_token_cost,
        ]
        if price.input_cost_per_token is None and price.output_cost_per_token is None:
            raise ConfigError(
                f"invalid config: prices.{model}: set input_cost_per_token "
                "and/or output_cost_per_token (USD per token)"
            )
        if any(v is not None and (not v.is_finite() or v < 0) for v in values):
            raise ConfigError(f"invalid config: prices.{model}: prices must be >= 0")


def _check_access(s: Settings) -> None:
    """Key cache and database bounds: each must be positive to mean anything."""
    for name in ("key_negative_cache_ttl", "key_stale_ttl"):
        if getattr(s, name) < 0:
            raise ConfigError(f"invalid config: {name} must not be negative")
    for name in ("key_lookup_wait", "database_timeout"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"invalid config: {name} must be positive")
    if s.key_lookup_concurrency < 1:
        raise ConfigError("invalid config: key_lookup_concurrency must be >= 1")
    if s.metrics_token is not None and len(s.metrics_token) < 16:
        raise ConfigError(
            "invalid config: metrics_token must be at least 16 characters "
            "(it guards per-key usage series)"
        )


def _check_cors(s: Settings) -> None:
    from llmrelay.cors import check_origin

    for i, entry in enumerate(s.cors_origins):
        problem = check_origin(entry)
        if problem:
            raise ConfigError(f"invalid config: cors_origins[{i}]: {problem}")
    if not 0 <= s.cors_max_age <= 86400:
        raise ConfigError("invalid config: cors_max_age must be between 0 and 86400 seconds")


def _check_connections(s: Settings) -> None:
    for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"invalid config: {name} must be positive")
    if s.drain_timeout < 0:
        raise ConfigError("invalid config: drain_timeout must not be negative")
    if s.max_header_bytes < 1024:
        raise ConfigError("invalid config: max_header_bytes must be at least 1024")
    for name in ("max_headers", "max_connections"):
        if getattr(s, name) < 1:
            raise ConfigError(f"invalid config: {name} must be at least 1")


def _check_cache(s: Settings) -> None:
    c = s.response_cache
    if c.backend not in ("auto", "memory", "redis"):
        raise ConfigError(
            f"invalid config: response_cache.backend: {c.backend!r} must be auto, memory or redis"
        )
    if c.backend == "redis" and not (c.redis_url or s.redis_url):
        raise ConfigError(
            "invalid config: response_cache.backend: redis needs "
            "response_cache.redis_url or redis_url"
        )
    if (
        c.embedding_timeout <= 0
        or c.max_vectors < 1
        or c.max_vectors_per_context < 1
        or c.vector_sync_interval <= 0
    ):
        raise ConfigError(
            "invalid config: response_cache.embedding_timeout, max_vectors, "
            "max_vectors_per_context and vector_sync_interval must be positive"
        )
    if c.max_bytes < 1024 or c.max_entry_bytes < 1024:
        raise ConfigError(
            "invalid config: response_cache.max_bytes and max_entry_bytes must be at least 1024"
        )


def check(s: Settings) -> None:
    _check_cache(s)
    _check_governance(s)
    _check_access(s)
    names = {p.name for p in s.providers}  # each entry is checked by parse_providers
    _check_routing(s)
    if s.mock_provider and "mock" in names:
        raise ConfigError(
            "invalid config: providers: the name 'mock' is reserved for the built-in "
            "mock provider (set mock_provider: false to use it yourself)"
        )
    for i, m in enumerate(s.models):
        builtin = m.provider == "mock" and s.mock_provider
        if m.provider not in names and not builtin and m.provider not in PRESET_NAMES:
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
    _check_connections(s)
    _check_cors(s)
    for name in ("max_upstream_body_bytes", "max_upstream_event_bytes"):
        if getattr(s, name) < 1024:
            raise ConfigError(f"invalid config: {name} must be at least 1024")
    if s.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"invalid config: log_level: unknown level {s.log_level!r}")
    for name in ("log_queue_size", "log_batch_size", "log_spool_max_bytes"):
        if getattr(s, name) < 1:
            raise ConfigError(f"invalid config: {name} must be at least 1")
    for name in ("log_spool_interval", "log_db_timeout"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"invalid config: {name} must be positive (seconds)")


def _check_routing(s: Settings) -> None:
    """Route configs are validated at load (structure); their targets at start-up."""
    from llmrelay.routing.config import RouteConfigError
    from llmrelay.routing.store import parse_named

    try:
        parse_named(s.route_configs)
    except RouteConfigError as exc:
        raise ConfigError(f"invalid config: route_configs.{exc}") from exc
    r = s.routing
    if r.default_config is not None and not r.default_config:
        raise ConfigError("invalid config: routing.default_config must not be empty")
    if r.retry_after_cap < 0 or r.config_cache_ttl < 0:
        raise ConfigError(
            "invalid config: routing.retry_after_cap and config_cache_ttl must not be negative"
        )
    b = r.circuit_breaker
    if b.failure_threshold < 1:
        raise ConfigError("invalid config: routing.circuit_breaker.failure_threshold must be >= 1")
    if b.window <= 0 or b.cooldown <= 0:
        raise ConfigError(
            "invalid config: routing.circuit_breaker.window and cooldown must be positive"
        )
