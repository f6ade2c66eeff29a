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

#: The most tokens one count of one call may say. An upstream's numbers are bounded
#: before they reach billing: an answer reporting ``10**30`` prompt tokens would
#: otherwise be priced (and debited from a budget) as such, and overflow the 32-bit
#: token columns of the rows. Ten times the largest context window offered in 2026
#: (10M tokens) is still far below it, and so is the sum of four counts (the rows'
#: ``INT32`` columns hold 2.1e9).
MAX_TOKENS = 100_000_000


def _count(value: Any) -> int | None:
    if type(value) is int:
        return value if 0 <= value <= MAX_TOKENS else (0 if value < 0 else MAX_TOKENS)
    if type(value) is float and value - value == 0.0:  # finite (inf - inf and nan are nan)
        return int(min(max(value, 0.0), MAX_TOKENS))
    return None


def token_count(value: Any) -> int:
    """One token count as an upstream sent it, as a billable number.

    A JSON integer, or a finite float, as a non-negative int of at most
    :data:`MAX_TOKENS` (a larger one is clamped: it is what the upstream claims, not
    credible beyond that); anything else (a string, ``true``, ``null``, an object) is
    not a count: 0, what is known of it.
    """
    # The usual counts first, without _count's call (six counts an answer).
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if value is None:
        return 0
    found = _count(value)
    return 0 if found is None else found


def any_count(*values: Any) -> bool:
    """Whether any of ``values`` is a count :func:`token_count` reads. A usage object
    holding none (``{"prompt_tokens": "many"}``) is no usage report at all: the call's
    usage stays unknown and is estimated from what was delivered, as a cut stream's is."""
    # A loop, not any() over a generator (a generator object and frame per answer).
    for value in values:  # noqa: SIM110
        if type(value) is int or _count(value) is not None:
            return True
    return False


def tokens(*values: Any) -> int:
    """The sum of token counts (each read by :func:`token_count`), bounded the same way."""
    return min(sum(token_count(v) for v in values), MAX_TOKENS)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """OpenAI's ``usage`` object (chat or Responses naming), every count bounded by
        :func:`token_count`; None when there is no usage object, or no count in it."""
        if not usage or not isinstance(usage, dict):
            return None
        get = usage.get
        raw_prompt = get("prompt_tokens") or get("input_tokens")
        raw_completion = get("completion_tokens") or get("output_tokens")
        if not any_count(raw_prompt, raw_completion, get("total_tokens")):
            return None
        prompt = token_count(raw_prompt)
        completion = token_count(raw_completion)
        details = _object(get("prompt_tokens_details") or get("input_tokens_details"))
        out_details = _object(get("completion_tokens_details") or get("output_tokens_details"))
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=token_count(get("total_tokens")) or tokens(prompt, completion),
            cached_tokens=token_count(details.get("cached_tokens")),
            cache_write_tokens=token_count(details.get("cache_write_tokens")),
            reasoning_tokens=token_count(out_details.get("reasoning_tokens")),
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
