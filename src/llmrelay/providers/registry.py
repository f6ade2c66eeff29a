"""The configured providers at run time: spec + adapter + transport + health state.

Built once at start from the settings (YAML providers, env-enabled presets, the built-in
mock) and from enabled provider rows in the database. Provider types map to adapter
factories in :data:`ADAPTERS`; adding a provider family is one row there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from llmrelay.config import ProviderConfig, Settings
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.azure import AzureOpenAIAdapter
from llmrelay.providers.base import Adapter, Capabilities, ProviderSpec
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.gemini import GeminiAdapter, VertexAdapter
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.providers.options import family_fields
from llmrelay.providers.presets import PRESETS
from llmrelay.upstream import Transport

#: provider type -> adapter factory. Every preset name is OpenAI-compatible.
ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "openai": OpenAICompatAdapter,
    "openai_compatible": OpenAICompatAdapter,
    "mock": OpenAICompatAdapter,
    **{name: OpenAICompatAdapter for name in PRESETS},
    # Native families (after the presets: a preset row may hold their defaults).
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "vertex": VertexAdapter,
    "bedrock": BedrockAdapter,
    "azure": AzureOpenAIAdapter,
}

MOCK_MODELS = ("echo",)

#: provider type -> what it can serve (OpenAI-compatible presets: the default).
CAPABILITIES: dict[str, Capabilities] = {
    "openai": Capabilities(responses_passthrough=True),
    "anthropic": Capabilities(embeddings=False, messages_passthrough=True, count_tokens=True),
    "bedrock": Capabilities(stream_framing="aws-eventstream"),
    "azure": Capabilities(models=False),
    "mock": Capabilities(models=False),
}
OPENAI_COMPATIBLE = Capabilities()


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

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def caps(self) -> Capabilities:
        return CAPABILITIES.get(self.spec.type, OPENAI_COMPATIBLE)

    def models(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.spec.static_models)
        seen.update(dict.fromkeys(self.listed_models))
        return tuple(seen)


def spec_from_config(cfg: ProviderConfig, env: Mapping[str, str]) -> ProviderSpec:
    """Fill a configured provider's gaps (base URL, key) from its preset row."""
    preset = PRESETS.get(cfg.type)
    base_url = cfg.base_url
    api_key = cfg.api_key
    if preset is not None:
        if not base_url:
            base_url = (env.get(preset.base_url_env) if preset.base_url_env else None) or (
                preset.base_url
            )
        if api_key is None and preset.key_env:
            api_key = env.get(preset.key_env)
    native = family_fields(cfg, env)
    if native is not None:
        base_url, api_key = native.base_url, native.api_key
    headers = dict(preset.extra_headers) if preset else {}
    headers.update(cfg.headers)
    return ProviderSpec(
        name=cfg.name,
        type=cfg.type,
        base_url=base_url or "",
        api_key=api_key or None,
        auth_header=preset.auth_header if preset else "authorization",
        auth_prefix=preset.auth_prefix if preset else "Bearer ",
        headers=tuple(headers.items()),
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        stream_usage=preset.stream_usage if preset else True,
        lists_models=(preset.lists_models if preset else True) and cfg.type != "mock"
        and (native is None or native.lists_models),
        static_models=tuple(cfg.models),
        drop_params=cfg.drop_params,
        **(native.spec_fields() if native is not None else {}),
    )


def provider_configs(settings: Settings, env: Mapping[str, str]) -> list[ProviderConfig]:
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
                configs.append(ProviderConfig(name=preset.name, type=preset.name))
    return configs


class Registry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers

    def get(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.providers.values())

    def __contains__(self, name: object) -> bool:
        return name in self.providers


def build_registry(
    settings: Settings,
    env: Mapping[str, str],
    http: Transport,
    mock: Transport,
    extra: list[ProviderConfig] | None = None,
) -> Registry:
    providers: dict[str, Provider] = {}
    for cfg in [*provider_configs(settings, env), *(extra or [])]:
        if not cfg.enabled or cfg.name in providers:
            continue
        spec = spec_from_config(cfg, env)
        transport = mock if cfg.type == "mock" else http
        if cfg.type == "vertex":  # OAuth2 tokens are minted on the transport side
            from llmrelay.providers.google_auth import vertex_transport

            transport = vertex_transport(
                cfg.name, cfg.credentials_file or env.get("GOOGLE_APPLICATION_CREDENTIALS"), http
            )
        providers[cfg.name] = Provider(spec, ADAPTERS[cfg.type](), transport)
    if settings.mock_provider and "mock" not in providers:
        spec = ProviderSpec(
            name="mock", type="mock", base_url="http://mock.invalid/v1", api_key=None,
            lists_models=False, static_models=MOCK_MODELS,
        )
        providers["mock"] = Provider(spec, OpenAICompatAdapter(), mock)
    return Registry(providers)
