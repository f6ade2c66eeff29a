"""Providers changed while the gateway runs: a safe swap of the registry's contents.

The :class:`~llmrelay.providers.registry.Registry` is one object shared by the router,
the resolver, the model lists and moderation, so a reload replaces what it holds rather
than the object: the providers mapping is rebuilt aside and assigned in one step (a
call in flight keeps the ``Provider`` it already resolved; the next call sees the new
mapping). A provider whose spec did not change keeps its very ``Provider`` object, so
its health state and fetched model list survive; cached direct route plans are dropped
(they hold ``Provider`` objects) and the error redactors learn the new credentials.

``reload()`` reads everything it needs from the database, so whatever learns of a
change (the admin API after its commit today, a poll or a pub/sub message from another
instance later) calls the same method; reloads are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrelay.providers.registry import Provider, build_registry, provider_configs
from llmrelay.providers.stored import stored_configs
from llmrelay.redaction import provider_secrets

if TYPE_CHECKING:
    from llmrelay.services import Services

log = logging.getLogger("llmrelay")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one reload changed, by provider name."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


class ProviderReloader:
    """Rebuilds the registry's providers from the configuration and the database."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = asyncio.Lock()

    async def reload(self) -> ReloadResult:
        """Read the stored providers and swap the registry's contents to match."""
        async with self._lock:
            s = self._services
            configured = {c.name for c in provider_configs(s.settings, s.env)}
            extra = await stored_configs(s.engine, s.credentials, configured)
            fresh = build_registry(s.settings, s.env, s.http, s.mock, extra).providers
            old = s.registry.providers
            merged: dict[str, Provider] = {}
            for name, provider in fresh.items():
                kept = old.get(name)
                merged[name] = kept if kept is not None and kept.spec == provider.spec else provider
            result = ReloadResult(
                added=tuple(n for n in merged if n not in old),
                changed=tuple(n for n in merged if n in old and merged[n] is not old[n]),
                removed=tuple(n for n in old if n not in merged),
            )
            s.registry.providers = merged
            s.router.forget_plans()
            secrets = provider_secrets(p.spec for p in merged.values())
            s.router.redactor.renew(secrets)
            s.model_lists.redactor.renew(secrets)
            if result.added or result.changed or result.removed:
                log.info(
                    "providers reloaded: added %s, changed %s, removed %s",
                    list(result.added),
                    list(result.changed),
                    list(result.removed),
                )
            return result
