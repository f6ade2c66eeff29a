"""The fields of a route config, one parser each, and :class:`RouteConfigError`.

Each parser checks one field (or one block: ``retry``, ``cache``, ``guardrails``) and
raises :class:`RouteConfigError` naming it by its path (``targets[1].retry.attempts``);
:mod:`llmrelay.routing.config` parses the tree of groups and targets with them, and
:func:`inherit` carries the call settings down that tree. ``RouteConfigError`` is
imported from :mod:`llmrelay.routing.config`, where the parser that raises it lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrelay.cache.options import CacheOptionsError, parse_cache_options
from llmrelay.guardrails.config import GuardrailConfigError, parse_guardrails
from llmrelay.routing.classify import ERROR_CLASSES, MATCH_ANY, ErrorMatcher, parse_error_list
from llmrelay.routing.retry import DEFAULT_RETRY_STATUSES, NO_RETRY, RetryPolicy

MAX_RETRIES = 10
MAX_SECONDS = 3600.0


class RouteConfigError(ValueError):
    """An invalid route config; ``path`` names the bad field (``targets[1].weight``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Inherited:
    """The call settings a nested element inherits from its group (overridden where it
    sets its own)."""

    on_errors: ErrorMatcher = MATCH_ANY
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    ttft_timeout: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def inherit(raw: Mapping[str, Any], path: str, up: Inherited) -> Inherited:
    """This element's effective call settings: its own fields over ``up``'s."""
    on_errors = up.on_errors
    if "on_errors" in raw:
        on_errors = on_errors_field(raw["on_errors"], join_path(path, "on_errors"))
    strategy = raw.get("strategy")
    if isinstance(strategy, Mapping) and "on_status_codes" in strategy:
        codes = status_code_list(
            strategy["on_status_codes"], f"{join_path(path, 'strategy')}.on_status_codes"
        )
        base = on_errors if "on_errors" in raw else ErrorMatcher()
        on_errors = ErrorMatcher(base.classes, base.statuses | frozenset(codes))
    retry = retry_field(raw["retry"], join_path(path, "retry")) if "retry" in raw else up.retry
    timeout = up.timeout
    seconds = seconds_field(raw, "timeout", path)
    millis = seconds_field(raw, "request_timeout", path, scale=1000)
    if seconds is not None and millis is not None:
        raise RouteConfigError(
            join_path(path, "request_timeout"),
            "give timeout (seconds) or request_timeout (ms), not both",
        )
    if seconds is not None or millis is not None:
        timeout = seconds if seconds is not None else millis
    ttft = seconds_field(raw, "ttft_timeout", path)
    params = up.params
    if "override_params" in raw:
        value = raw["override_params"]
        if not isinstance(value, Mapping):
            raise RouteConfigError(join_path(path, "override_params"), "must be an object")
        if "model" in value and "model" in raw:
            raise RouteConfigError(
                join_path(path, "override_params.model"),
                "give model or override_params.model, not both",
            )
        for banned in ("messages", "stream", "input"):
            if banned in value:
                raise RouteConfigError(
                    f"{join_path(path, 'override_params')}.{banned}",
                    "cannot be overridden by a route config",
                )
        params = {**up.params, **value}
    return Inherited(
        on_errors, retry, timeout, ttft if ttft is not None else up.ttft_timeout, params
    )


def on_errors_field(value: object, path: str) -> ErrorMatcher:
    if not isinstance(value, list) or not value:
        raise RouteConfigError(path, "must be a non-empty array")
    for i, item in enumerate(value):
        if isinstance(item, bool):
            raise RouteConfigError(f"{path}[{i}]", "must be an error class or a status code")
        # isdigit() alone accepts "²", which int() refuses.
        if isinstance(item, int) or (isinstance(item, str) and item.isascii() and item.isdigit()):
            if not 400 <= int(item) <= 599:
                raise RouteConfigError(f"{path}[{i}]", "status codes must be in 400..599")
            continue
        if not isinstance(item, str) or item not in ERROR_CLASSES:
            raise RouteConfigError(
                f"{path}[{i}]",
                f"unknown error class {item!r} (one of: "
                f"{', '.join(sorted(ERROR_CLASSES))}, or a status code)",
            )
    return parse_error_list(value)


def status_code_list(value: object, path: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise RouteConfigError(path, "must be a non-empty array of status codes")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 400 <= item <= 599:
            raise RouteConfigError(f"{path}[{i}]", "must be a status code in 400..599")
    return list(value)


def retry_field(value: object, path: str) -> RetryPolicy:
    if not isinstance(value, Mapping):
        raise RouteConfigError(path, "must be an object")
    allowed = {
        "attempts",
        "on_status_codes",
        "exponential_backoff",
        "base_delay",
        "max_delay",
        "use_retry_after",
    }
    for key in value:
        if key not in allowed:
            raise RouteConfigError(
                f"{path}.{key}", f"unknown field; allowed: {', '.join(sorted(allowed))}"
            )
    attempts = value.get("attempts", 0)
    if (
        isinstance(attempts, bool)
        or not isinstance(attempts, int)
        or not (0 <= attempts <= MAX_RETRIES)
    ):
        raise RouteConfigError(f"{path}.attempts", f"must be an integer in 0..{MAX_RETRIES}")
    statuses = DEFAULT_RETRY_STATUSES
    if "on_status_codes" in value:
        statuses = frozenset(status_code_list(value["on_status_codes"], f"{path}.on_status_codes"))
    flags = {}
    for flag in ("exponential_backoff", "use_retry_after"):
        flag_value = value.get(flag, True)
        if not isinstance(flag_value, bool):
            raise RouteConfigError(f"{path}.{flag}", "must be true or false")
        flags[flag] = flag_value
    base = seconds_field(value, "base_delay", path, allow_zero=True)
    top = seconds_field(value, "max_delay", path)
    policy = RetryPolicy(
        attempts=attempts,
        on_status_codes=statuses,
        exponential_backoff=flags["exponential_backoff"],
        base_delay=NO_RETRY.base_delay if base is None else base,
        max_delay=NO_RETRY.max_delay if top is None else top,
        use_retry_after=flags["use_retry_after"],
    )
    if policy.max_delay < policy.base_delay:
        raise RouteConfigError(f"{path}.max_delay", "must be at least base_delay")
    return policy


def cache_field(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The top-level ``cache`` block, checked by the response cache's own parser."""
    value = raw.get("cache")
    if value is None:
        return None
    try:
        parse_cache_options(value, "cache")
    except CacheOptionsError as exc:
        raise RouteConfigError(exc.path, exc.message) from None
    return dict(value)


def guardrails_field(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = raw.get("guardrails")
    if value is None:
        return None
    try:
        parse_guardrails(value)
    except GuardrailConfigError as exc:
        raise RouteConfigError(exc.path, exc.message) from exc
    return dict(value)


def seconds_field(
    raw: Mapping[str, Any],
    key: str,
    path: str,
    *,
    scale: float = 1.0,
    allow_zero: bool = False,
    maximum: float = MAX_SECONDS,
) -> float | None:
    if key not in raw:
        return None
    value = raw[key]
    here = join_path(path, key)
    unit = "milliseconds" if scale != 1.0 else "seconds"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RouteConfigError(here, f"must be a number of {unit}")
    seconds = float(value) / scale
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds > maximum:
        low = "0" if allow_zero else "above 0"
        raise RouteConfigError(here, f"must be {low} and at most {maximum * scale:g} {unit}")
    return seconds


def weight_field(raw: Mapping[str, Any], path: str) -> float:
    if "weight" not in raw:
        return 1.0
    value = raw["weight"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RouteConfigError(join_path(path, "weight"), "must be a number >= 0")
    return float(value)


def str_field(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RouteConfigError(join_path(path, key), "must be a non-empty string")
    return value
