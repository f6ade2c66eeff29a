"""Model resolution: ``provider/model``, then configured model names, then aliases.

A model id may itself contain slashes (OpenRouter's ``openai/gpt-4o``), so only the part
before the first slash is tried as a provider name, and only if such a provider exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from llmrelay.errors import PermissionDenied, UnknownModel
from llmrelay.providers.registry import Provider, Registry

if TYPE_CHECKING:
    from llmrelay.redaction import Redactor


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    #: The model id sent upstream.
    model: str
    #: Request parameters a route config sets for this target (``override_params``).
    overrides: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    #: The API key whose own credential this target uses (:mod:`llmrelay.routing.bound`):
    #: its circuit is its own, apart from the shared credential's.
    scope: str | None = None
    #: Scrubs that credential too from the upstream's errors.
    redactor: Redactor | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def qualified(self) -> str:
        return f"{self.provider.name}/{self.model}"

    @property
    def breaker_key(self) -> str:
        """What the circuit breaker counts failures under."""
        return self.qualified if self.scope is None else f"{self.qualified}@key:{self.scope}"

    def body_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI-shaped body for this target: the client's plus the route's overrides.

        Every ``build(target)`` passed to ``open_routed`` must use it, so overrides apply
        before any adapter translates the body.
        """
        return {**body, **self.overrides} if self.overrides else body


class Resolver:
    def __init__(
        self,
        registry: Registry,
        routes: dict[str, tuple[str, str]],
        aliases: dict[str, str],
    ) -> None:
        self._registry = registry
        self._routes = routes
        self._aliases = aliases
        #: ``route_by_catalog``: model name -> the price catalog's ``litellm_provider``s.
        self._catalog: dict[str, frozenset[str]] = {}

    @property
    def route_names(self) -> list[str]:
        return list(self._routes)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def set_catalog(self, catalog: dict[str, frozenset[str]]) -> None:
        """Route bare catalog model names too (``route_by_catalog``; empty: never)."""
        self._catalog = dict(catalog)

    def set_aliases(self, aliases: dict[str, str]) -> None:
        """Serve ``aliases`` from now on (a change read from the database at run time)."""
        self._aliases = dict(aliases)

    def resolve(self, name: str) -> Target:
        target = self._resolve(name, depth=0)
        if target is None:
            raise UnknownModel(name)
        return target

    def _resolve(self, name: str, depth: int) -> Target | None:
        if depth > 5:  # alias cycles
            return None
        provider_name, sep, model = name.partition("/")
        if sep and model:
            provider = self._registry.get(provider_name)
            if provider is not None:
                return Target(provider, model)
        route = self._routes.get(name)
        if route is not None:
            provider = self._registry.get(route[0])
            if provider is not None:
                return Target(provider, route[1])
        alias = self._aliases.get(name)
        if alias is not None:
            return self._resolve(alias, depth + 1)
        kinds = self._catalog.get(name)
        if kinds is not None:
            return self._by_catalog(name, kinds)
        return None

    def _by_catalog(self, name: str, kinds: frozenset[str]) -> Target | None:
        """A bare catalog name goes to the one enabled provider of its ``litellm_provider``
        (by type, ``openai``, or by name); two candidates are ambiguous: no route."""
        found = [p for p in self._registry if p.spec.type in kinds or p.name in kinds]
        return Target(found[0], name) if len(found) == 1 else None

    def resolves_to(self, name: str, target: Target) -> bool:
        """Whether ``name`` resolves to this very target (same provider and model id)."""
        found = self._resolve(name, depth=0)
        return (
            found is not None
            and found.provider is target.provider
            and (found.model == target.model)
        )


def check_allowed(
    allowed: tuple[str, ...] | None, target: Target, names: tuple[str, ...] = ()
) -> None:
    """Raise 403 unless the key's model patterns admit this target.

    A target is admitted by its qualified name (``provider/model``) or by one of
    ``names``: names that resolved to exactly this target (the request's model or
    alias). The caller must pass only such names: a name the client chose that did
    *not* resolve to the target (a route config in a header pointing elsewhere) must
    never admit it, or any allowed name would unlock every target a config can reach.
    """
    if allowed is None:
        return
    candidates = (target.qualified, *names)
    for pattern in allowed:
        if any(fnmatchcase(n, pattern) for n in candidates):
            return
    shown = names[0] if names else target.qualified
    raise PermissionDenied(f"this API key is not allowed to use model {shown}", param="model")
