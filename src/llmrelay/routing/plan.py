"""Binding a parsed route config to the running gateway: specs become concrete targets.

A spec names providers and models; a plan holds the :class:`Target` objects the
router calls. A target's ``provider`` is a configured provider's name or, for
drop-in Portkey configs, its type (``"openai"`` finds the first provider of type
openai). Without a ``model`` the request's own model is used: resolved through the
gateway's routes and aliases when it lands on the same provider, else sent as is.
Without a ``provider`` the ``model`` is resolved like a request's model; a config with
neither (only settings: ``cache``, ``retry``, ...) routes the request's own model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmrelay.errors import GatewayError
from llmrelay.providers.registry import Provider, Registry
from llmrelay.routing.config import RouteSpec, TargetSpec
from llmrelay.routing.resolve import Resolver, Target


class BindError(ValueError):
    """A config names something this gateway does not have; ``path`` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Leaf:
    spec: TargetSpec
    target: Target


@dataclass(frozen=True, slots=True)
class Group:
    spec: RouteSpec
    children: tuple[Leaf | Group, ...]

    def leaves(self) -> list[Leaf]:
        out: list[Leaf] = []
        for child in self.children:
            out.extend(child.leaves() if isinstance(child, Group) else [child])
        return out


@dataclass(frozen=True, slots=True)
class RoutePlan:
    root: Group
    #: Where the config came from, for logs: ``x-portkey-config``, ``config:<name>``, ...
    source: str
    #: Skip targets whose circuit is open. Off for direct calls (no config): a request
    #: naming one provider gets that provider's real answer, not a 503 from us.
    enforce_breaker: bool = True

    @property
    def cache(self) -> Mapping[str, Any] | None:
        return self.root.spec.cache

    @property
    def guardrails(self) -> Mapping[str, Any] | None:
        return self.root.spec.guardrails


def find_provider(registry: Registry, name: str) -> Provider | None:
    """A provider by name, else the first one of that type (Portkey's provider names)."""
    found = registry.get(name)
    if found is not None:
        return found
    for provider in registry:
        if provider.spec.type == name:
            return provider
    return None


def bind(
    spec: RouteSpec, registry: Registry, resolver: Resolver, request_model: str | None
) -> Group:
    """Resolve every target of ``spec``; raises :class:`BindError` naming the field."""
    children: list[Leaf | Group] = []
    for child in spec.targets:
        if isinstance(child, RouteSpec):
            children.append(bind(child, registry, resolver, request_model))
        else:
            children.append(Leaf(child, _target(child, registry, resolver, request_model)))
    return Group(spec, tuple(children))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _target(
    spec: TargetSpec, registry: Registry, resolver: Resolver, request_model: str | None
) -> Target:
    overrides = dict(spec.params) or None
    if spec.provider is None:
        # No provider and no model (a config of only settings, such as a cache block):
        # the request's own model, resolved as without a config.
        if spec.model is None:
            if not request_model:
                raise BindError(
                    _join(spec.path, "model"), "required: the request names no model to use"
                )
            resolved = resolver.resolve(request_model)  # unknown: the usual model_not_found
            return Target(resolved.provider, resolved.model, overrides)
        try:
            resolved = resolver.resolve(spec.model)
        except GatewayError as exc:
            raise BindError(_join(spec.path, "model"), f"unknown model {spec.model!r}") from exc
        return Target(resolved.provider, resolved.model, overrides)
    provider = find_provider(registry, spec.provider)
    if provider is None:
        names = ", ".join(sorted(p.name for p in registry))
        raise BindError(
            _join(spec.path, "provider"),
            f"no provider named (or of type) {spec.provider!r} is configured (configured: {names})",
        )
    model = spec.model
    if model is None:
        if not request_model:
            raise BindError(
                _join(spec.path, "model"), "required: the request names no model to use"
            )
        model = _request_model_for(provider, resolver, request_model)
    return Target(provider, model, overrides)


def _request_model_for(provider: Provider, resolver: Resolver, request_model: str) -> str:
    try:
        resolved = resolver.resolve(request_model)
    except GatewayError:
        resolved = None
    if resolved is not None and resolved.provider is provider:
        return resolved.model
    return request_model.removeprefix(provider.name + "/")


def direct_plan(target: Target) -> RoutePlan:
    """The plan of a request without a route config: its one resolved target."""
    leaf = TargetSpec(provider=target.provider.name, model=target.model)
    spec = RouteSpec("single", (leaf,))
    return RoutePlan(Group(spec, (Leaf(leaf, target),)), source="direct", enforce_breaker=False)
