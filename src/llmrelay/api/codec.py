"""What an endpoint is: a codec between one client wire format and the internal call.

Each client API (OpenAI chat completions, embeddings, Anthropic Messages, OpenAI
Responses, Anthropic token counting) is one :class:`Codec`. The pipeline
(:mod:`llmrelay.pipeline`) does every I/O step of a call and asks the codec only to
translate, so every endpoint, streamed or not, passes the same stages and plug-ins::

    parse     validate the body; set call.model / call.stream (and the codec's state)
    build     the upstream request for one target (its own shape when the target may
              take the client's body untranslated: call.passthrough), or
              CapabilityMissing when the target's family cannot serve it
    decode    a target's non-streamed 2xx body -> the internal answer (OpenAI shape,
              or the client's own when passed through)
    encode    the internal answer -> the client's bytes
    translator / encoder
              a target's stream -> internal events -> the client's events
    render_error / error_event
              an error in the client's shape (JSON body, or in-band stream event)

Codecs do no I/O and keep per-call state only on the call (``call.codec_state``,
``call.passthrough``), so one codec object serves every call of its endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from llmrelay.errors import GatewayError, InvalidRequest, UpstreamInvalidResponse
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall
from llmrelay.sse import encode_json
from llmrelay.stream_encoding import OutputEncoder

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


class Codec(Protocol):
    #: The route recorded in rows and metrics (``/v1/chat/completions``).
    route: str
    #: Route configs apply (token counting always goes to the model's own target).
    routed: bool

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        """Validate ``body``; set ``call.model``, ``call.stream`` and the codec's state."""
        ...

    def build(self, call: Call, target: Target) -> UpstreamCall:
        """The upstream request for ``target`` (inside the router's attempt loop)."""
        ...

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        """``target``'s non-streamed 2xx answer in the internal form (inside the attempt,
        so a body that is not the provider's answer fails that attempt)."""
        ...

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        """The internal answer as the client's JSON body."""
        ...

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        """``target``'s stream events -> internal events (usage and finish tracked)."""
        ...

    def encoder(self, call: Call) -> OutputEncoder | None:
        """Internal events -> the client's events; ``None``: they are the same."""
        ...

    def render_error(self, exc: GatewayError) -> bytes:
        """The error as the client's JSON error body."""
        ...

    def error_event(self, exc: GatewayError) -> bytes:
        """The error as the client's in-band stream event (when no encoder says)."""
        ...

    def answer_headers(self, call: Call) -> dict[str, str]:
        """Headers of the client's API set on the answer (Anthropic's ``request-id``)."""
        ...

    async def local(self, call: Call, target: Target) -> bytes | None:
        """An answer made without any upstream (token counting for a family that cannot
        count), or ``None``; asked for direct calls only, before limits."""
        ...


class OpenAIErrors:
    """Errors in OpenAI's shape (the body ``{"error": {...}}``, the same as an SSE event),
    and the defaults of the optional codec steps."""

    def render_error(self, exc: GatewayError) -> bytes:
        return exc.body()

    def error_event(self, exc: GatewayError) -> bytes:
        return encode_json(exc.to_dict())

    def answer_headers(self, call: Call) -> dict[str, str]:
        return {}

    async def local(self, call: Call, target: Target) -> bytes | None:
        return None


def unexpected_answer(call: Call) -> UpstreamInvalidResponse:
    """The 502 for an answer the codec cannot translate for its client (an
    OpenAI-compatible upstream's own body, passed on by its adapter, of a shape the
    translation does not know)."""
    provider = call.target.provider.name if call.target is not None else "upstream"
    return UpstreamInvalidResponse(provider, "an answer of an unexpected shape")


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("missing required field: model", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("field model must be a non-empty string", param="model")
    return model


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise InvalidRequest("field stream must be a boolean", param="stream")
    return stream
