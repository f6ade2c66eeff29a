"""Bound keys: an API key tied to a provider, optionally with its own real credential.

Seed 002's gateway routes by key: ``vk_user2_anthropic`` goes to Anthropic with that
user's own Anthropic key. Here a key with a ``provider`` sends its unprefixed model
names (and names prefixed with that provider) to that provider; with its own
credential, the upstream is called with it instead of the provider's configured one.

Each binding is a copy of the configured :class:`~llmrelay.providers.registry.Provider`
whose spec carries the key's credential and whose health state is its own, and its
targets have their own circuit-breaker key (``Target.scope``): one team's revoked or
rate-limited credential opens the circuit for that team's key only, not for every
client of the shared provider. The credential is opened from its sealed form once per
binding, and added to a redactor of its own, so an upstream error that echoes it is
scrubbed like a configured credential's.

Renewal: a binding's redactor adds its credential to the gateway's redactor, which it
consults live, so providers reloaded with new credentials (the change feed,
``/admin/providers/reload``) are scrubbed from bound keys' errors at once; a reload that
changes the key's provider's spec makes a new binding at the key's next call. A rotated
credential (``PUT /admin/virtual-keys/{id}/rotate`` with ``new_api_key``) changes the
sealed value, so the next call makes a new binding, whose redactor also masks the
credential it replaces: calls still in flight with the old one, or an upstream quoting
it after the swap, cannot leak it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from llmrelay.errors import ServiceUnavailable
from llmrelay.providers.registry import Provider, ProviderState, Registry
from llmrelay.redaction import Redactor
from llmrelay.routing.plan import Group, Leaf, RoutePlan
from llmrelay.routing.resolve import Target
from llmrelay.store.credentials import CredentialBox, CredentialError

if TYPE_CHECKING:
    from llmrelay.governance.key_records import KeyRecord

#: Bindings kept at most (one per key with its own credential in use).
MAX_BINDINGS = 10_000


class BoundProviders:
    """The provider copies of bound keys, made on a key's first call and kept."""

    def __init__(self, registry: Registry, box: CredentialBox, redactor: Redactor) -> None:
        self._registry = registry
        self._box = box
        self._redactor = redactor
        #: Key id -> (its sealed credential, the provider copy, its redactor).
        self._bindings: dict[str, tuple[str, Provider, Redactor]] = {}

    def target(self, key: KeyRecord, model: str) -> Target | None:
        """The target of ``model`` for a bound ``key``; ``None`` when the binding does
        not apply (no binding, or a model prefixed with another provider)."""
        if key.provider is None:
            return None
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self._registry:
            if prefix != key.provider:
                return None
            model = rest
        provider, redactor = self._binding(key)
        if key.sealed_provider_key is None:
            return Target(provider, model)
        return Target(provider, model, scope=key.id, redactor=redactor)

    def plan(self, plan: RoutePlan, key: KeyRecord) -> RoutePlan:
        """``plan`` with its targets at the key's provider using the key's credential.

        A key's route config (fallback, load balance) may name its provider among
        others: those targets are called with the key's own credential and counted by
        circuits of its own; targets at other providers are left as they are.
        """
        if key.provider is None or key.sealed_provider_key is None:
            return plan
        shared = self._registry.get(key.provider)
        if shared is None or not any(leaf.target.provider is shared for leaf in plan.root.leaves()):
            return plan
        provider, redactor = self._binding(key)

        def swap(node: Group) -> Group:
            children: list[Leaf | Group] = []
            for child in node.children:
                if isinstance(child, Group):
                    children.append(swap(child))
                elif child.target.provider is shared:
                    target = replace(
                        child.target, provider=provider, scope=key.id, redactor=redactor
                    )
                    children.append(replace(child, target=target))
                else:
                    children.append(child)
            return replace(node, children=tuple(children))

        return replace(plan, root=swap(plan.root))

    def _binding(self, key: KeyRecord) -> tuple[Provider, Redactor]:
        assert key.provider is not None
        shared = self._registry.get(key.provider)
        if shared is None:
            raise ServiceUnavailable(
                f"this API key is bound to provider {key.provider!r}, which this gateway "
                "does not configure; ask its administrator",
                code="bound_provider_missing",
            )
        if key.sealed_provider_key is None:
            return shared, self._redactor
        found = self._bindings.get(key.id)
        if (
            found is not None
            and found[0] == key.sealed_provider_key  # a rotated credential: a new copy
            and found[1].spec == replace(shared.spec, api_key=found[1].spec.api_key)
        ):
            return found[1], found[2]
        try:
            secret = self._box.open(key.sealed_provider_key)["api_key"]
        except (CredentialError, KeyError):
            raise ServiceUnavailable(
                "this API key's provider credential cannot be decrypted by this instance "
                "(is LLMRELAY_MASTER_KEY the same on every instance?)",
                code="key_credential_unreadable",
            ) from None
        provider = replace(shared, spec=replace(shared.spec, api_key=secret), state=ProviderState())
        # After a rotation, the credential it replaces is still masked (see the module).
        before = found[1].spec.api_key if found is not None else None
        redactor = self._redactor.with_secrets((secret, *(() if before is None else (before,))))
        if len(self._bindings) >= MAX_BINDINGS:
            self._bindings.clear()
        self._bindings[key.id] = (key.sealed_provider_key, provider, redactor)
        return provider, redactor
