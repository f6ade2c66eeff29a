"""Provider families as typed objects: what each can serve and how it is built.

A :class:`Family` is everything the gateway knows about one kind of provider: its
:class:`~llmrelay.providers.base.Capabilities` (asked by the pipeline and the codecs,
never probed on the adapter), the adapter it runs, the config structs of the ``type``
values it serves, how a config plus the environment becomes a
:class:`~llmrelay.providers.base.ProviderSpec`, and the transport it needs (the shared
HTTP pool, the in-process mock, or Vertex's transport that mints OAuth2 tokens).
Adding a family is one :class:`Family` row in :data:`FAMILIES` (see
CONTRIBUTING.md, "Adding a provider family").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llmrelay.providers import specs
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.azure import AzureOpenAIAdapter
from llmrelay.providers.base import Adapter, Capabilities, ProviderSpec
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.config_types import CONFIG_TYPES, ProviderConfig, VertexConfig
from llmrelay.providers.gemini import GeminiAdapter, VertexAdapter
from llmrelay.providers.google_auth import vertex_transport
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.providers.presets import PRESETS
from llmrelay.upstream import Transport


@dataclass(frozen=True, slots=True)
class Transports:
    """The transports built once at start that a family's transport is chosen from."""

    http: Transport
    mock: Transport


#: How a family gets the transport of one configured provider.
TransportFactory = Callable[[ProviderConfig, Mapping[str, str], Transports], Transport]


def plain_http(cfg: ProviderConfig, env: Mapping[str, str], t: Transports) -> Transport:
    """The shared HTTP pool: credentials travel in the adapter-built headers."""
    return t.http


def in_process_mock(cfg: ProviderConfig, env: Mapping[str, str], t: Transports) -> Transport:
    """The built-in mock answers in process, with no upstream."""
    return t.mock


def vertex_oauth(cfg: ProviderConfig, env: Mapping[str, str], t: Transports) -> Transport:
    """The HTTP pool behind a transport adding a Google OAuth2 bearer token per call
    (adapters are pure, so tokens are minted on the transport side)."""
    path = cfg.credentials_file if isinstance(cfg, VertexConfig) else None
    return vertex_transport(cfg.name, path or env.get("GOOGLE_APPLICATION_CREDENTIALS"), t.http)


@dataclass(frozen=True, slots=True)
class Family:
    """One provider family: capabilities, adapter, config structs, spec and transport."""

    name: str
    caps: Capabilities
    #: A fresh adapter (adapters are pure; one per configured provider).
    adapter: Callable[[], Adapter]
    #: The provider ``type`` values this family serves, each with its config struct.
    configs: Mapping[str, type[ProviderConfig]]
    #: The spec of one configured provider, gaps filled from the environment.
    to_spec: Callable[[ProviderConfig, Mapping[str, str]], ProviderSpec]
    transport: TransportFactory = plain_http


def _types(*names: str) -> dict[str, type[ProviderConfig]]:
    return {name: CONFIG_TYPES[name] for name in names}


OPENAI = Family(
    "openai",
    Capabilities(responses_passthrough=True),
    OpenAICompatAdapter,
    _types("openai"),
    specs.openai_compatible_spec,
)
OPENAI_COMPATIBLE = Family(
    "openai-compatible",
    Capabilities(),
    OpenAICompatAdapter,
    _types("openai_compatible", *(p for p in PRESETS if p not in ("openai", "anthropic"))),
    specs.openai_compatible_spec,
)
ANTHROPIC = Family(
    "anthropic",
    Capabilities(embeddings=False, messages_passthrough=True, count_tokens=True),
    AnthropicAdapter,
    _types("anthropic"),
    specs.openai_compatible_spec,
)
GEMINI = Family("gemini", Capabilities(), GeminiAdapter, _types("gemini"), specs.gemini_spec)
VERTEX = Family(
    "vertex",
    Capabilities(),
    VertexAdapter,
    _types("vertex"),
    specs.vertex_spec,
    vertex_oauth,
)
BEDROCK = Family(
    "bedrock",
    Capabilities(stream_framing="aws-eventstream"),
    BedrockAdapter,
    _types("bedrock"),
    specs.bedrock_spec,
)
AZURE = Family(
    "azure",
    Capabilities(models=False),
    AzureOpenAIAdapter,
    _types("azure"),
    specs.azure_spec,
)
MOCK = Family(
    "mock",
    Capabilities(models=False),
    OpenAICompatAdapter,
    _types("mock"),
    specs.mock_spec,
    in_process_mock,
)

FAMILIES: tuple[Family, ...] = (
    OPENAI,
    OPENAI_COMPATIBLE,
    ANTHROPIC,
    GEMINI,
    VERTEX,
    BEDROCK,
    AZURE,
    MOCK,
)

#: provider ``type`` -> its family.
BY_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.configs}


def family_for(provider_type: str) -> Family:
    """The family serving ``provider_type`` (every type of CONFIG_TYPES has one)."""
    return BY_TYPE[provider_type]
