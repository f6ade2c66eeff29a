"""The adapter protocol: what a provider family must translate, and nothing else.

Adapters are pure: they turn the OpenAI-shaped request into an :class:`UpstreamCall`,
and the provider's bytes back into OpenAI-shaped bytes plus the usage we bill. They do
no I/O and read no environment; the pipeline sends the call through a transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from llmrelay.errors import CapabilityMissing, UpstreamError
from llmrelay.sse import EventSplitter


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not usage:
            return None
        prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        out_details = (
            usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        )
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(usage.get("total_tokens") or prompt + completion),
            cached_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
        )


@dataclass(slots=True)
class UpstreamCall:
    """One HTTP request to a provider, fully built (URL, headers with credentials, body)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class ChatResult:
    """A translated non-streaming answer: bytes for the client plus what we bill."""

    body: bytes
    usage: Usage | None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A configured provider instance as adapters see it (credentials included)."""

    name: str
    type: str
    base_url: str
    api_key: str | None
    auth_header: str = "authorization"
    auth_prefix: str = "Bearer "
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 600.0
    connect_timeout: float = 10.0
    stream_usage: bool = True
    lists_models: bool = True
    static_models: tuple[str, ...] = ()
    #: Drop parameters the provider cannot honour instead of refusing the request.
    drop_params: bool = False
    #: Azure OpenAI ``api-version`` query parameter.
    api_version: str | None = None
    #: AWS region (Bedrock).
    region: str | None = None
    #: Google Cloud project and location (Vertex AI).
    project: str | None = None
    location: str | None = None
    #: AWS credentials (Bedrock SigV4); never shown in a repr.
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)

    def json_headers(self, key_header: str | None, key_prefix: str = "") -> dict[str, str]:
        """Headers of a JSON request: the API key (when set) under ``key_header``, then
        the configured extra headers, which win over both."""
        headers = {"content-type": "application/json"}
        if key_header is not None and self.api_key:
            headers[key_header] = key_prefix + self.api_key
        headers.update(self.headers)
        return headers


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider family can serve, declared once per family.

    The pipeline and the endpoint codecs ask this, never the adapter's attributes; a
    call a target cannot serve fails that attempt with
    :class:`~llmrelay.errors.CapabilityMissing`, which the router treats like any other
    attempt outcome (``on_errors`` decides whether a fallback moves on).
    """

    chat: bool = True
    embeddings: bool = True
    #: The provider lists its models (``GET /models`` or the family's equivalent).
    models: bool = True
    #: ``/v1/messages`` bodies are sent as is (the family speaks Anthropic Messages).
    messages_passthrough: bool = False
    #: ``/v1/messages/count_tokens`` is answered by the provider itself.
    count_tokens: bool = False
    #: ``/v1/responses`` bodies are sent as is (the provider serves the Responses API).
    responses_passthrough: bool = False
    #: How its streams are framed: ``sse`` or ``aws-eventstream`` (Bedrock).
    stream_framing: str = "sse"


class FrameSplitter(Protocol):
    """Cuts a provider's stream bytes into whole frames for :meth:`StreamTranslator.feed`.

    SSE (:class:`llmrelay.sse.EventSplitter`) is the default; a family whose stream is
    framed differently (Bedrock's AWS event stream) overrides
    :meth:`AdapterBase.splitter`.
    """

    def feed(self, chunk: bytes) -> list[bytes]: ...


class StreamTranslator(Protocol):
    """State machine from the provider's stream events to OpenAI ``chat.completion.chunk``s."""

    usage: Usage | None
    finish_reason: str | None
    #: The provider signalled a clean end (``[DONE]``, ``message_stop``, ...).
    done: bool
    #: Characters of generated content seen so far (to estimate usage of a cut stream).
    content_chars: int

    def feed(self, event: bytes) -> list[bytes]:
        """Translate one raw SSE event; return SSE bytes to send to the client."""
        ...

    def end(self) -> list[bytes]:
        """The upstream closed; return any final events (``[DONE]`` if it ended cleanly)."""
        ...


class Adapter(Protocol):
    """One provider family's translations (OpenAI-compatible, Anthropic, Gemini, ...)."""

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall: ...

    def chat_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult: ...

    def chat_stream(
        self, spec: ProviderSpec, model: str, client_wants_usage: bool
    ) -> StreamTranslator: ...

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall: ...

    def embeddings_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult: ...

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None: ...

    def parse_models(self, body: bytes) -> list[str]: ...

    def error(
        self, spec: ProviderSpec, status: int, body: bytes, headers: dict[str, str]
    ) -> UpstreamError: ...

    # -- optional operations (see Capabilities; AdapterBase refuses them by default) --
    def splitter(self, spec: ProviderSpec, max_event_bytes: int) -> FrameSplitter: ...

    def messages_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        stream: bool,
        beta: str | None = None,
    ) -> UpstreamCall: ...

    def messages_response(self, spec: ProviderSpec, body: bytes) -> ChatResult: ...

    def messages_stream(self, spec: ProviderSpec, model: str) -> StreamTranslator: ...

    def count_tokens_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        beta: str | None = None,
    ) -> UpstreamCall: ...

    def responses_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall: ...


class AdapterBase:
    """What every family inherits: SSE stream framing, and a :class:`CapabilityMissing`
    for each optional operation it does not override (its :class:`Capabilities` say
    which it does)."""

    def splitter(self, spec: ProviderSpec, max_event_bytes: int) -> FrameSplitter:
        return EventSplitter(max_event_bytes, spec.name)

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        raise CapabilityMissing(
            spec.name, "embeddings", "use an embeddings model of another provider"
        )

    def embeddings_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        raise CapabilityMissing(spec.name, "embeddings")

    def messages_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        stream: bool,
        beta: str | None = None,
    ) -> UpstreamCall:
        raise CapabilityMissing(spec.name, "Anthropic Messages bodies as is")

    def messages_response(self, spec: ProviderSpec, body: bytes) -> ChatResult:
        raise CapabilityMissing(spec.name, "Anthropic Messages bodies as is")

    def messages_stream(self, spec: ProviderSpec, model: str) -> StreamTranslator:
        raise CapabilityMissing(spec.name, "Anthropic Messages streams as is")

    def count_tokens_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        beta: str | None = None,
    ) -> UpstreamCall:
        raise CapabilityMissing(spec.name, "token counting")

    def responses_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        raise CapabilityMissing(spec.name, "Responses API bodies as is")
