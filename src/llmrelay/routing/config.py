"""The route config schema: parsed strictly into frozen specs, errors naming the field.

One recursive shape serves the YAML file, the database, a key's default and the
``x-llmrelay-config`` / ``x-portkey-config`` headers (Portkey's field names are the
native ones). A config is a *group* (``strategy`` + ``targets``) or a *target*
(``provider`` / ``model``); a group's targets may be groups again.

Settings that describe how to call a target (``retry``, ``timeout``, ``ttft_timeout``,
``override_params``, ``on_errors``) are inherited down the tree and overridden where a
nested element sets its own, so every parsed :class:`TargetSpec` carries its effective
values and the router never walks up. Unknown fields are rejected: a misspelt
``on_error`` must not silently turn a fallback chain into a single call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrelay.cache.options import CacheOptionsError, parse_cache_options
from llmrelay.guardrails.config import GuardrailConfigError, parse_guardrails
from llmrelay.routing.classify import ERROR_CLASSES, MATCH_ANY, ErrorMatcher, parse_error_list
from llmrelay.routing.conditions import Condition, QueryError, parse_query
from llmrelay.routing.retry import DEFAULT_RETRY_STATUSES, NO_RETRY, RetryPolicy

STRATEGIES = ("single", "fallback", "loadbalance", "conditional")
MAX_DEPTH = 5
MAX_TARGETS = 50
MAX_RETRIES = 10
MAX_SECONDS = 3600.0

_COMMON = frozenset(
    {
        "name",
        "weight",
        "on_errors",
        "retry",
        "timeout",
        "request_timeout",
        "ttft_timeout",
        "deadline",
        "override_params",
        "cache",
        "guardrails",
        "strategy",
    }
)
_GROUP = _COMMON | {"targets", "weights"}
_TARGET = _COMMON | {"provider", "model"}
_UNSUPPORTED = {
    "virtual_key": "name a provider configured in llmrelay in 'provider' instead",
    "api_key": "provider credentials live in llmrelay's provider config, never in a route",
    "custom_host": "configure the host as an llmrelay provider and name it in 'provider'",
}


class RouteConfigError(ValueError):
    """An invalid route config; ``path`` names the bad field (``targets[1].weight``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A leaf: one provider/model with its effective call settings."""

    provider: str | None
    model: str | None
    name: str | None = None
    weight: float = 1.0
    on_errors: ErrorMatcher = MATCH_ANY
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    ttft_timeout: float | None = None
    deadline: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A group: a strategy over targets (which may be groups)."""

    strategy: str
    targets: tuple[TargetSpec | RouteSpec, ...]
    name: str | None = None
    weight: float = 1.0
    on_errors: ErrorMatcher = MATCH_ANY
    conditions: tuple[Condition, ...] = ()
    default: str | None = None
    deadline: float | None = None
    #: Top level only: the cache settings the request asked for (``mode``, ``ttl``).
    cache: Mapping[str, Any] | None = None
    #: Top level only: the guardrails block (validated; the plug-in parses it again).
    guardrails: Mapping[str, Any] | None = None
    path: str = ""

    def leaves(self) -> list[TargetSpec]:
        out: list[TargetSpec] = []
        for t in self.targets:
            out.extend(t.leaves() if isinstance(t, RouteSpec) else [t])
        return out


@dataclass(frozen=True, slots=True)
class _Inherited:
    on_errors: ErrorMatcher = MATCH_ANY
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    ttft_timeout: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


def parse_route_config(raw: object) -> RouteSpec:
    """Validate a decoded config; the top level is always returned as a group."""
    if not isinstance(raw, Mapping):
        raise RouteConfigError("", "a route config must be a JSON object")
    node = _element(raw, "", _Inherited(), depth=0)
    if isinstance(node, TargetSpec):
        return RouteSpec("single", (node,), cache=_cache(raw), guardrails=_guardrails(raw), path="")
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _element(
    raw: Mapping[str, Any], path: str, up: _Inherited, depth: int
) -> TargetSpec | RouteSpec:
    if depth > MAX_DEPTH:
        raise RouteConfigError(path, f"configs nest at most {MAX_DEPTH} levels deep")
    is_group = "targets" in raw or "weights" in raw
    allowed = _GROUP if is_group else _TARGET
    for key in raw:
        if key not in allowed:
            hint = _UNSUPPORTED.get(str(key))
            if hint is None and is_group and key in ("provider", "model"):
                hint = "a group has targets; put provider/model on its targets"
            if hint is None and not is_group and key in ("targets", "weights"):
                hint = "targets and weights cannot be combined"
            raise RouteConfigError(
                _join(path, str(key)),
                f"unknown field{' (' + hint + ')' if hint else ''}; allowed: "
                f"{', '.join(sorted(allowed))}",
            )
    if "cache" in raw and depth > 0:
        raise RouteConfigError(_join(path, "cache"), "cache is only allowed at the top level")
    if "cache" in raw:
        _cache(raw)
    if "guardrails" in raw and depth > 0:
        raise RouteConfigError(
            _join(path, "guardrails"), "guardrails are only allowed at the top level"
        )
    if "guardrails" in raw:
        _guardrails(raw)
    mine = _inherit(raw, path, up)
    name = _opt_str(raw, "name", path)
    weight = _weight(raw, path)
    deadline = _seconds(raw, "deadline", path)
    if not is_group:
        strategy, _ = _strategy(raw, path)
        if strategy != "single":
            raise RouteConfigError(
                _join(path, "targets"), f"strategy {strategy} needs a targets array"
            )
        provider = _opt_str(raw, "provider", path)
        model = _opt_str(raw, "model", path)
        params = dict(mine.params)
        if "model" in params:
            if model is None:
                model = params["model"] if isinstance(params["model"], str) else None
            if model is None:
                raise RouteConfigError(_join(path, "override_params.model"), "must be a string")
            del params["model"]
        if provider is None and model is None and depth > 0:
            raise RouteConfigError(
                path or "provider", "a target needs a provider, a model, or targets"
            )
        return TargetSpec(
            provider=provider,
            model=model,
            name=name,
            weight=weight,
            on_errors=mine.on_errors,
            retry=mine.retry,
            timeout=mine.timeout,
            ttft_timeout=mine.ttft_timeout,
            deadline=deadline,
            params=params,
            path=path,
        )
    if "targets" in raw and "weights" in raw:
        raise RouteConfigError(_join(path, "weights"), "give targets or weights, not both")
    key = "targets" if "targets" in raw else "weights"
    strategy, strategy_obj = _strategy(raw, path)
    if key == "weights" and strategy != "loadbalance":
        raise RouteConfigError(
            _join(path, "weights"), "weights is the loadbalance form; use targets for " + strategy
        )
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise RouteConfigError(_join(path, key), "must be a non-empty array")
    if len(items) > MAX_TARGETS:
        raise RouteConfigError(_join(path, key), f"at most {MAX_TARGETS} targets")
    children: list[TargetSpec | RouteSpec] = []
    for i, item in enumerate(items):
        here = f"{_join(path, key)}[{i}]"
        if not isinstance(item, Mapping):
            raise RouteConfigError(here, "must be an object")
        children.append(_element(item, here, mine, depth + 1))
    spec = RouteSpec(
        strategy=strategy,
        targets=tuple(children),
        name=name,
        weight=weight,
        on_errors=mine.on_errors,
        deadline=deadline,
        cache=_cache(raw) if depth == 0 else None,
        guardrails=_guardrails(raw) if depth == 0 else None,
        path=path,
    )
    return _check_group(spec, strategy_obj, path, key)


def _check_group(
    spec: RouteSpec, strategy_obj: Mapping[str, Any] | None, path: str, key: str
) -> RouteSpec:
    names: dict[str, int] = {}
    for i, child in enumerate(spec.targets):
        if child.name is not None:
            if child.name in names:
                raise RouteConfigError(
                    f"{_join(path, key)}[{i}].name", f"duplicate target name {child.name!r}"
                )
            names[child.name] = i
    if spec.strategy == "single" and len(spec.targets) != 1:
        raise RouteConfigError(_join(path, key), "strategy single takes exactly one target")
    if spec.strategy == "loadbalance" and not any(t.weight > 0 for t in spec.targets):
        raise RouteConfigError(
            f"{_join(path, key)}[0].weight", "at least one target needs a weight above 0"
        )
    if spec.strategy != "conditional":
        if strategy_obj is not None:
            for extra in ("conditions", "default"):
                if extra in strategy_obj:
                    raise RouteConfigError(
                        f"{_join(path, 'strategy')}.{extra}", "only allowed with mode conditional"
                    )
        return spec
    assert strategy_obj is not None  # conditional needs the object form (checked before)
    spath = _join(path, "strategy")
    raw_conditions = strategy_obj.get("conditions")
    if not isinstance(raw_conditions, list) or not raw_conditions:
        raise RouteConfigError(f"{spath}.conditions", "must be a non-empty array")
    conditions: list[Condition] = []
    for i, raw in enumerate(raw_conditions):
        cpath = f"{spath}.conditions[{i}]"
        if not isinstance(raw, Mapping):
            raise RouteConfigError(cpath, "must be an object with query and then")
        unknown = set(raw) - {"query", "then"}
        if unknown:
            raise RouteConfigError(
                f"{cpath}.{sorted(unknown)[0]}", "unknown field; allowed: query, then"
            )
        try:
            query = parse_query(raw.get("query"), "query")
        except QueryError as exc:
            raise RouteConfigError(f"{cpath}.{exc.path}", exc.message) from exc
        then = raw.get("then")
        if not isinstance(then, str) or then not in names:
            raise RouteConfigError(
                f"{cpath}.then", f"must name one of the targets ({', '.join(names) or 'none'})"
            )
        conditions.append(Condition(query, then))
    default = strategy_obj.get("default")
    if default is not None and (not isinstance(default, str) or default not in names):
        raise RouteConfigError(
            f"{spath}.default", f"must name one of the targets ({', '.join(names) or 'none'})"
        )
    return RouteSpec(
        strategy=spec.strategy,
        targets=spec.targets,
        name=spec.name,
        weight=spec.weight,
        on_errors=spec.on_errors,
        conditions=tuple(conditions),
        default=default,
        deadline=spec.deadline,
        cache=spec.cache,
        guardrails=spec.guardrails,
        path=spec.path,
    )


def _strategy(raw: Mapping[str, Any], path: str) -> tuple[str, Mapping[str, Any] | None]:
    """``"fallback"`` or Portkey's ``{"mode": "fallback", "on_status_codes": [...]}``."""
    value = raw.get("strategy", "single" if "targets" not in raw and "weights" not in raw else None)
    here = _join(path, "strategy")
    if value is None:
        if "weights" in raw:
            return "loadbalance", None
        raise RouteConfigError(here, f"required with targets (one of: {', '.join(STRATEGIES)})")
    obj: Mapping[str, Any] | None = None
    if isinstance(value, Mapping):
        obj = value
        unknown = set(value) - {"mode", "on_status_codes", "conditions", "default"}
        if unknown:
            raise RouteConfigError(
                f"{here}.{sorted(unknown)[0]}",
                "unknown field; allowed: mode, on_status_codes, conditions, default",
            )
        value = value.get("mode")
        here = f"{here}.mode"
    if value not in STRATEGIES:
        known = ", ".join(STRATEGIES)
        raise RouteConfigError(here, f"unknown strategy {value!r} (one of: {known})")
    if value == "conditional" and obj is None:
        raise RouteConfigError(
            here,
            "conditional needs the object form "
            '{"mode": "conditional", "conditions": [...], "default": ...}',
        )
    return str(value), obj


def _inherit(raw: Mapping[str, Any], path: str, up: _Inherited) -> _Inherited:
    on_errors = up.on_errors
    if "on_errors" in raw:
        on_errors = _errors(raw["on_errors"], _join(path, "on_errors"))
    strategy = raw.get("strategy")
    if isinstance(strategy, Mapping) and "on_status_codes" in strategy:
        codes = _status_list(
            strategy["on_status_codes"], f"{_join(path, 'strategy')}.on_status_codes"
        )
        base = on_errors if "on_errors" in raw else ErrorMatcher()
        on_errors = ErrorMatcher(base.classes, base.statuses | frozenset(codes))
    retry = _retry(raw["retry"], _join(path, "retry")) if "retry" in raw else up.retry
    timeout = up.timeout
    seconds = _seconds(raw, "timeout", path)
    millis = _seconds(raw, "request_timeout", path, scale=1000)
    if seconds is not None and millis is not None:
        raise RouteConfigError(
            _join(path, "request_timeout"),
            "give timeout (seconds) or request_timeout (ms), not both",
        )
    if seconds is not None or millis is not None:
        timeout = seconds if seconds is not None else millis
    ttft = _seconds(raw, "ttft_timeout", path)
    params = up.params
    if "override_params" in raw:
        value = raw["override_params"]
        if not isinstance(value, Mapping):
            raise RouteConfigError(_join(path, "override_params"), "must be an object")
        if "model" in value and "model" in raw:
            raise RouteConfigError(
                _join(path, "override_params.model"),
                "give model or override_params.model, not both",
            )
        for banned in ("messages", "stream", "input"):
            if banned in value:
                raise RouteConfigError(
                    f"{_join(path, 'override_params')}.{banned}",
                    "cannot be overridden by a route config",
                )
        params = {**up.params, **value}
    return _Inherited(
        on_errors, retry, timeout, ttft if ttft is not None else up.ttft_timeout, params
    )


def _errors(value: object, path: str) -> ErrorMatcher:
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


def _status_list(value: object, path: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise RouteConfigError(path, "must be a non-empty array of status codes")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 400 <= item <= 599:
            raise RouteConfigError(f"{path}[{i}]", "must be a status code in 400..599")
    return list(value)


def _retry(value: object, path: str) -> RetryPolicy:
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
        statuses = frozenset(_status_list(value["on_status_codes"], f"{path}.on_status_codes"))
    flags = {}
    for flag in ("exponential_backoff", "use_retry_after"):
        flag_value = value.get(flag, True)
        if not isinstance(flag_value, bool):
            raise RouteConfigError(f"{path}.{flag}", "must be true or false")
        flags[flag] = flag_value
    base = _seconds(value, "base_delay", path, allow_zero=True)
    top = _seconds(value, "max_delay", path)
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


def _cache(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The top-level ``cache`` block, checked by the response cache's own parser."""
    value = raw.get("cache")
    if value is None:
        return None
    try:
        parse_cache_options(value, "cache")
    except CacheOptionsError as exc:
        raise RouteConfigError(exc.path, exc.message) from None
    return dict(value)


def _guardrails(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = raw.get("guardrails")
    if value is None:
        return None
    try:
        parse_guardrails(value)
    except GuardrailConfigError as exc:
        raise RouteConfigError(exc.path, exc.message) from exc
    return dict(value)


def _seconds(
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
    here = _join(path, key)
    unit = "milliseconds" if scale != 1.0 else "seconds"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RouteConfigError(here, f"must be a number of {unit}")
    seconds = float(value) / scale
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds > maximum:
        low = "0" if allow_zero else "above 0"
        raise RouteConfigError(here, f"must be {low} and at most {maximum * scale:g} {unit}")
    return seconds


def _weight(raw: Mapping[str, Any], path: str) -> float:
    if "weight" not in raw:
        return 1.0
    value = raw["weight"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RouteConfigError(_join(path, "weight"), "must be a number >= 0")
    return float(value)


def _opt_str(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RouteConfigError(_join(path, key), "must be a non-empty string")
    return value
