"""The configured providers at run time: spec + adapter + transport + health state.

Built once at start from the settings (YAML providers, env-enabled presets, the built-in
mock) and from enabled provider rows in the database. What a provider ``type`` can do
and how it is built is its :class:`~llmrelay.providers.family.Family`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmrelay.providers.base import Adapter, Capabilities, ProviderSpec
from llmrelay.providers.config_types import ProviderConfig, provider_config
from llmrelay.providers.family import MOCK, Family, Transports, family_for
from llmrelay.providers.presets import PRESETS
from llmrelay.upstream import Transport

MOCK_MODELS = ("echo",)


class ProviderSettings(Protocol):
    """The part of the gateway settings that decides which providers exist.

    A protocol so the providers package needs nothing from ``llmrelay.config``.
    """

    @property
    def providers(self) -> Sequence[ProviderConfig]: ...

    @property
    def auto_providers(self) -> bool: ...

    @property
    def mock_provider(self) -> bool: ...


@dataclass(slots=True)
class ProviderState:
    """What the gateway last saw of a provider, for ``/health/ready``."""

    status: str = "unknown"  # unknown | ok | error
    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0

    def ok(self) -> None:
        self.status = "ok"
        self.last_ok = time.time()
        self.consecutive_failures = 0

    def failed(self, message: str) -> None:
        self.status = "error"
        self.last_error = message
        self.last_error_at = time.time()
        self.consecutive_failures += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass(slots=True)
class Provider:
    spec: ProviderSpec
    adapter: Adapter
    transport: Transport
    state: ProviderState = field(default_factory=ProviderState)
    #: Models learned from the provider's list endpoint (refreshed in the background).
    listed_models: tuple[str, ...] = ()
    #: ``spec.name``, kept as a field: read about seven times per call (headers, the
    #: attempt record, the row), where a property was a Python call each time.
    name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.name = self.spec.name

    @property
    def family(self) -> Family:
        return family_for(self.spec.type)

    @property
    def caps(self) -> Capabilities:
        return family_for(self.spec.type).caps

    def models(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.spec.static_models)
        seen.update(dict.fromkeys(self.listed_models))
        return tuple(seen)


def spec_from_config(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    """The spec of one configured provider, its gaps filled by its family."""
    return family_for(cfg.type).to_spec(cfg, env)


def provider_configs(settings: ProviderSettings, env: Mapping[str, str]) -> list[ProviderConfig]:
    """Configured providers plus presets switched on by their environment variable."""
    configs = list(settings.providers)
    if settings.auto_providers:
        named = {p.name for p in configs}
        for preset in PRESETS.values():
            if preset.name in named:
                continue
            key_set = bool(preset.key_env and env.get(preset.key_env))
            url_set = bool(preset.base_url_env and env.get(preset.base_url_env))
            if key_set or (not preset.key_env and url_set):
                configs.append(provider_config(preset.name, name=preset.name))
    return configs


class Registry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers

    def get(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def __iter__(self) -> Iterator[Provider]:
        return iter(self.providers.values())

    def __contains__(self, name: object) -> bool:
        return name in self.providers


def build_registry(
    settings: ProviderSettings,
    env: Mapping[str, str],
    http: Transport,
    mock: Transport,
    extra: Sequence[ProviderConfig] | None = None,
) -> Registry:
    """Every enabled provider once (the first entry of a name wins), then the built-in
    mock when switched on and not configured by name."""
    transports = Transports(http=http, mock=mock)
    providers: dict[str, Provider] = {}
    for cfg in [*provider_configs(settings, env), *(extra or [])]:
        if not cfg.enabled or cfg.name in providers:
            continue
        family = family_for(cfg.type)
        spec = family.to_spec(cfg, env)
        transport = family.transport(cfg, env, transports)
        providers[cfg.name] = Provider(spec, family.adapter(), transport)
    if settings.mock_provider and "mock" not in providers:
        spec = ProviderSpec(
            name="mock",
            type="mock",
            base_url="http://mock.invalid/v1",
            api_key=None,
            lists_models=False,
            static_models=MOCK_MODELS,
        )
        providers["mock"] = Provider(spec, MOCK.adapter(), mock)
    return Registry(providers)
