"""Provider configuration: one strict struct per family, a tagged union on ``type``.

A provider entry is decoded by its ``type`` into the struct of its family, so a key
another family reads (``region`` on an ``openai`` entry) is rejected with its path
instead of being silently ignored, and each family checks its own required fields.
Every OpenAI-compatible preset (``groq``, ``ollama``, ...) is a type of its own with
the common fields only. This module is a leaf of the providers package: it imports no
adapter and not ``llmrelay.config``, so ``config.py`` can validate providers through
it without an import cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, cast

import msgspec

from llmrelay.config_error import ConfigError
from llmrelay.providers.presets import PRESETS


class ProviderConfig(
    msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    """The fields every provider type accepts; each family's struct adds its own."""

    name: str
    base_url: str | None = None
    api_key: str | None = None
    #: Seconds for a whole non-streaming call, and the idle gap allowed between stream chunks.
    timeout: float = 600.0
    connect_timeout: float = 10.0
    #: Extra headers sent upstream on every call (e.g. OpenRouter's HTTP-Referer).
    headers: dict[str, str] = {}
    #: Model ids this provider offers, listed by ``GET /v1/models``.
    models: list[str] = []
    enabled: bool = True
    #: Translating adapters: silently drop request parameters the provider cannot
    #: honour (e.g. ``seed`` for Anthropic) instead of answering 400 naming them.
    drop_params: bool = False

    def problem(self) -> str | None:
        """What is wrong beyond the field types, as ``field: what`` (None: nothing).

        A method rather than ``__post_init__`` so that building a config in code does no
        file I/O (Vertex reads its credentials file here); :func:`parse_provider` calls it.
        """
        if not self.name or "/" in self.name:
            return f"name: {self.name!r} must be non-empty without '/'"
        if self.timeout <= 0 or self.connect_timeout <= 0:
            return "timeout: timeout and connect_timeout must be positive"
        return None

    @property
    def type(self) -> str:
        """The entry's ``type`` (the struct's tag)."""
        return str(self.__struct_config__.tag)

    def __repr__(self) -> str:
        """Fields with credentials masked: a config may reach a log line or a traceback."""
        shown = ", ".join(
            f"{f}={'***' if f in _SECRET_FIELDS and getattr(self, f) else repr(getattr(self, f))}"
            for f in self.__struct_fields__
        )
        return f"{type(self).__name__}({shown})"


#: Fields never shown by ``repr`` (the API key and the AWS credentials).
_SECRET_FIELDS = frozenset(
    {"api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
)


class OpenAICompatibleConfig(ProviderConfig, tag="openai_compatible", frozen=True):
    """``type: openai_compatible``: any host speaking OpenAI's API at ``base_url``."""

    def problem(self) -> str | None:
        if not self.base_url:
            return "base_url is required for type openai_compatible"
        return ProviderConfig.problem(self)


class AnthropicConfig(ProviderConfig, tag="anthropic", frozen=True):
    """``type: anthropic``: the Messages API (defaults from the ``anthropic`` preset row)."""


class GeminiConfig(ProviderConfig, tag="gemini", frozen=True):
    """``type: gemini``: the Gemini API (key: ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``)."""


class MockConfig(ProviderConfig, tag="mock", frozen=True):
    """``type: mock``: the in-process mock (an own entry needs ``mock_provider: false``)."""


class VertexConfig(ProviderConfig, tag="vertex", frozen=True):
    """``type: vertex``: Gemini on Vertex AI, OAuth2 tokens minted from Google credentials."""

    #: Default: the credentials file's project_id, then GOOGLE_CLOUD_PROJECT.
    project: str | None = None
    #: Default: GOOGLE_CLOUD_LOCATION, then us-central1.
    location: str | None = None
    #: A service-account (or authorized-user) JSON file; default: Google's application
    #: default credentials.
    credentials_file: str | None = None

    def problem(self) -> str | None:
        if self.credentials_file is not None:
            try:
                service_account_info(self.credentials_file)
            except ConfigError as exc:
                return f"credentials_file: {exc}"
        return ProviderConfig.problem(self)


class BedrockConfig(ProviderConfig, tag="bedrock", frozen=True):
    """``type: bedrock``: AWS Bedrock's Converse API, SigV4-signed."""

    #: Default: AWS_REGION / AWS_DEFAULT_REGION.
    region: str | None = None
    #: Default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    def problem(self) -> str | None:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            return "aws_access_key_id and aws_secret_access_key must be given together"
        return ProviderConfig.problem(self)


class AzureConfig(ProviderConfig, tag="azure", frozen=True):
    """``type: azure``: Azure OpenAI deployments behind a resource endpoint."""

    #: The ``api-version`` sent with every call (default: the current GA version).
    api_version: str | None = None

    def problem(self) -> str | None:
        if not self.base_url:
            return (
                "base_url is required for type azure: the resource endpoint, "
                "e.g. https://NAME.openai.azure.com"
            )
        return ProviderConfig.problem(self)


_NATIVE: dict[str, type[ProviderConfig]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        OpenAICompatibleConfig,
        AnthropicConfig,
        GeminiConfig,
        MockConfig,
        VertexConfig,
        BedrockConfig,
        AzureConfig,
    )
}


def _preset_config(name: str) -> type[ProviderConfig]:
    """The struct of one OpenAI-compatible preset type: the common fields, its own tag."""
    struct_name = "".join(part.capitalize() for part in name.split("_")) + "Config"
    return cast(
        type[ProviderConfig],
        msgspec.defstruct(
            struct_name,
            [],
            bases=(ProviderConfig,),
            tag=name,
            module=__name__,
            forbid_unknown_fields=True,
            frozen=True,
            kw_only=True,
        ),
    )


#: provider ``type`` -> its config struct. The ``anthropic`` preset row only supplies
#: defaults: its type is the native Anthropic struct.
CONFIG_TYPES: dict[str, type[ProviderConfig]] = {
    **{name: _preset_config(name) for name in PRESETS if name not in _NATIVE},
    **_NATIVE,
}

#: The OpenAI-compatible preset names (a route may name one that no config lists: it is
#: switched on by its key variable).
PRESET_NAMES: frozenset[str] = frozenset(PRESETS)

#: The tagged union msgspec decodes a provider entry into (dispatching on ``type``).
ProviderConfigUnion: Any = Union[tuple(CONFIG_TYPES.values())]  # noqa: UP007


def _fields(cls: type[ProviderConfig]) -> frozenset[str]:
    return frozenset(f.name for f in msgspec.structs.fields(cls))


def _readers(key: str) -> list[str]:
    """The provider types whose struct has ``key`` (for a wrong-family field's message)."""
    return [t for t, cls in _NATIVE.items() if key in _fields(cls)]


def provider_config(type: str, **fields: Any) -> ProviderConfig:
    """A config built in code (unchecked: :func:`parse_provider` checks user input)."""
    try:
        cls = CONFIG_TYPES[type]
    except KeyError:
        raise ConfigError(f"unknown provider type {type!r}") from None
    return cls(**fields)


def parse_provider(raw: Any, path: str = "provider") -> ProviderConfig:
    """One provider entry from parsed YAML/JSON, strictly checked, errors naming ``path``."""
    cfg = raw if isinstance(raw, ProviderConfig) else _decode(raw, path)
    problem = cfg.problem()
    if problem is not None:
        raise ConfigError(f"invalid config: {path}.{problem}")
    return cfg


def _decode(raw: Any, path: str) -> ProviderConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"invalid config: {path}: expected a mapping with name and type")
    known = ", ".join(sorted(CONFIG_TYPES))
    kind = raw.get("type")
    if kind is None:
        raise ConfigError(f"invalid config: {path}.type: missing (one of: {known})")
    if not isinstance(kind, str) or kind not in CONFIG_TYPES:
        raise ConfigError(
            f"invalid config: {path}.type: unknown provider type {kind!r} (one of: {known})"
        )
    allowed = _fields(CONFIG_TYPES[kind])
    for key in raw:
        if key == "type" or key in allowed:
            continue
        readers = _readers(str(key))
        why = (
            f"only provider type {' / '.join(readers)} reads it"
            if readers
            else f"known keys: {', '.join(sorted(allowed))}"
        )
        raise ConfigError(f"invalid config: {path}.{key}: not allowed for type {kind!r} ({why})")
    try:
        cfg: ProviderConfig = msgspec.convert(dict(raw), ProviderConfigUnion, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {_located(str(exc), path)}") from exc
    return cfg


def _located(message: str, path: str) -> str:
    """msgspec's ``Expected `float`, got `str` - at `$.timeout``` as ``path.timeout: ...``."""
    head, sep, where = message.rpartition(" - at `")
    if not sep:
        return f"{path}: {message}"
    where = where.rstrip("`").removeprefix("$")
    return f"{path}{where}: {head.replace('`', '')}"


def parse_providers(raw: Any, path: str = "providers") -> list[ProviderConfig]:
    """The ``providers`` list: every entry checked, names unique."""
    if not isinstance(raw, list | tuple):
        raise ConfigError(f"invalid config: {path}: expected a list of provider entries")
    configs: list[ProviderConfig] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        cfg = parse_provider(item, f"{path}[{i}]")
        if cfg.name in names:
            raise ConfigError(f"invalid config: {path}[{i}].name: duplicate provider {cfg.name!r}")
        names.add(cfg.name)
        configs.append(cfg)
    return configs


def service_account_info(path: str) -> dict[str, Any]:
    """The parsed Google credentials JSON file, or a ConfigError saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ConfigError(f"{path} is not a Google credentials file (no 'type' field)")
    if data["type"] == "service_account":
        missing = [k for k in ("client_email", "private_key", "token_uri") if not data.get(k)]
        if missing:
            raise ConfigError(f"{path}: service account file lacks {', '.join(missing)}")
    return data
