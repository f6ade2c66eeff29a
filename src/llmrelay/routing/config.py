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

This module parses the tree (groups, targets, strategies, conditions); each field's own
parser, the inheritance of call settings and :class:`RouteConfigError` are in
:mod:`llmrelay.routing.config_fields` (the error is imported from here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrelay.routing.classify import MATCH_ANY, ErrorMatcher
from llmrelay.routing.conditions import Condition, QueryError, parse_query
from llmrelay.routing.config_fields import (
    Inherited,
    RouteConfigError,
    cache_field,
    guardrails_field,
    inherit,
    join_path,
    seconds_field,
    str_field,
    weight_field,
)
from llmrelay.routing.retry import NO_RETRY, RetryPolicy

__all__ = ["RouteConfigError", "RouteSpec", "TargetSpec", "parse_route_config"]

STRATEGIES = ("single", "fallback", "loadbalance", "conditional")
MAX_DEPTH = 5
MAX_TARGETS = 50

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


def parse_route_config(raw: object) -> RouteSpec:
    """Validate a decoded config; the top level is always returned as a group."""
    if not isinstance(raw, Mapping):
        raise RouteConfigError("", "a route config must be a JSON object")
    node = _element(raw, "", Inherited(), depth=0)
    if isinstance(node, TargetSpec):
        return RouteSpec(
            "single", (node,), cache=cache_field(raw), guardrails=guardrails_field(raw), path=""
        )
    return node


def _element(
    raw: Mapping[str, Any], path: str, up: Inherited, depth: int
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
                join_path(path, str(key)),
                f"unknown field{' (' + hint + ')' if hint else ''}; allowed: "
                f"{', '.join(sorted(allowed))}",
            )
    if "cache" in raw and depth > 0:
        raise RouteConfigError(join_path(path, "cache"), "cache is only allowed at the top level")
    if "cache" in raw:
        cache_field(raw)
    if "guardrails" in raw and depth > 0:
        raise RouteConfigError(
            join_path(path, "guardrails"), "guardrails are only allowed at the top level"
        )
    if "guardrails" in raw:
        guardrails_field(raw)
    mine = inherit(raw, path, up)
    name = str_field(raw, "name", path)
    weight = weight_field(raw, path)
    deadline = seconds_field(raw, "deadline", path)
    if not is_group:
        strategy, _ = _strategy(raw, path)
        if strategy != "single":
            raise RouteConfigError(
                join_path(path, "targets"), f"strategy {strategy} needs a targets array"
            )
        provider = str_field(raw, "provider", path)
        model = str_field(raw, "model", path)
        params = dict(mine.params)
        if "model" in params:
            if model is None:
                model = params["model"] if isinstance(params["model"], str) else None
            if model is None:
                raise RouteConfigError(join_path(path, "override_params.model"), "must be a string")
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
        raise RouteConfigError(join_path(path, "weights"), "give targets or weights, not both")
    key = "targets" if "targets" in raw else "weights"
    strategy, strategy_obj = _strategy(raw, path)
    if key == "weights" and strategy != "loadbalance":
        raise RouteConfigError(
            join_path(path, "weights"),
            "weights is the loadbalance form; use targets for " + strategy,
        )
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise RouteConfigError(join_path(path, key), "must be a non-empty array")
    if len(items) > MAX_TARGETS:
        raise RouteConfigError(join_path(path, key), f"at most {MAX_TARGETS} targets")
    children: list[TargetSpec | RouteSpec] = []
    for i, item in enumerate(items):
        here = f"{join_path(path, key)}[{i}]"
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
        cache=cache_field(raw) if depth == 0 else None,
        guardrails=guardrails_field(raw) if depth == 0 else None,
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
                    f"{join_path(path, key)}[{i}].name", f"duplicate target name {child.name!r}"
                )
            names[child.name] = i
    if spec.strategy == "single" and len(spec.targets) != 1:
        raise RouteConfigError(join_path(path, key), "strategy single takes exactly one target")
    if spec.strategy == "loadbalance" and not any(t.weight > 0 for t in spec.targets):
        raise RouteConfigError(
            f"{join_path(path, key)}[0].weight", "at least one target needs a weight above 0"
        )
    if spec.strategy != "conditional":
        if strategy_obj is not None:
            for extra in ("conditions", "default"):
                if extra in strategy_obj:
                    raise RouteConfigError(
                        f"{join_path(path, 'strategy')}.{extra}",
                        "only allowed with mode conditional",
                    )
        return spec
    assert strategy_obj is not None  # conditional needs the object form (checked before)
    spath = join_path(path, "strategy")
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
    here = join_path(path, "strategy")
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
