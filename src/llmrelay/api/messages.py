"""``POST /v1/messages``: Anthropic's Messages API in front of every configured model.

The official ``anthropic`` SDK (and tools built on it) can use any model llmrelay
routes to: the request is translated to an OpenAI chat body
(:mod:`.messages_translate`), goes through the same pipeline as ``/v1/chat/completions``
(auth with ``x-api-key``, limits, routing, plug-ins, logging, cost), and the answer is
translated back: a ``message`` object, or Anthropic's SSE events (:mod:`.messages_stream`).
Errors leave in Anthropic's shape, ``{"type": "error", "error": {type, message}}``.

When the target that answers speaks Messages itself (the ``messages_passthrough``
capability) and its route adds no parameter overrides, the client's body is sent as is
and the answer relayed untouched: no double translation, so Anthropic-only features
(thinking signatures, prompt caching, server tools, citations) keep working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.codec import OpenAIErrors, require_model, stream_flag, unexpected_answer
from llmrelay.api.messages_stream import AnthropicEncoder
from llmrelay.api.messages_translate import to_chat, to_message, validate
from llmrelay.asgi import Request
from llmrelay.errors import GatewayError, InvalidRequest
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall
from llmrelay.providers.stream_state import SHAPE_ERRORS
from llmrelay.stream_encoding import OutputEncoder, PassthroughEncoder

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


#: What an ``anthropic-beta`` value may hold: beta names, commas, spaces.
_BETA = re.compile(r"[\x20-\x7e]*")


def beta_header(request: Request) -> str | None:
    """The client's ``anthropic-beta`` header, which is passed on to Anthropic.

    Checked first: a control character in it made the HTTP client refuse the whole
    upstream call (``ValueError: Forbidden control character``), a 500.
    """
    beta = request.header("anthropic-beta")
    if beta is not None and _BETA.fullmatch(beta) is None:
        raise InvalidRequest(
            "anthropic-beta: only printable ASCII is allowed (beta names separated by commas)",
            param="anthropic-beta",
        )
    return beta


def native(target: Target) -> bool:
    """Whether ``target`` takes a Messages body as is (its route changes no parameter)."""
    return target.provider.caps.messages_passthrough and not target.overrides


def anthropic_error_body(exc: GatewayError) -> bytes:
    return orjson.dumps(anthropic_error(exc))


def anthropic_error_event(exc: GatewayError) -> bytes:
    return b"event: error\ndata: " + anthropic_error_body(exc) + b"\n\n"


@dataclass(slots=True)
class MessagesState:
    beta: str | None
    #: The translated chat body, made once when a translating target first needs it.
    chat: dict[str, Any] | None = None


class AnthropicErrors(OpenAIErrors):
    """Errors in Anthropic's shape, and its ``request-id`` on passed-through answers."""

    def render_error(self, exc: GatewayError) -> bytes:
        return anthropic_error_body(exc)

    def error_event(self, exc: GatewayError) -> bytes:
        return anthropic_error_event(exc)

    def answer_headers(self, call: Call) -> dict[str, str]:
        # What the anthropic SDK reads as ``_request_id``: Anthropic's own, passed on.
        if call.passthrough and call.upstream_request_id is not None:
            return {"request-id": call.upstream_request_id}
        return {}


class MessagesCodec(AnthropicErrors):
    route = "/v1/messages"
    routed = True

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        call.model = require_model(body)
        call.stream = stream_flag(body)
        validate(body)
        call.codec_state = MessagesState(beta_header(call.request))

    def build(self, call: Call, target: Target) -> UpstreamCall:
        assert call.body is not None
        state: MessagesState = call.codec_state
        p = target.provider
        call.passthrough = native(target)
        if call.passthrough:
            return p.adapter.messages_request(
                p.spec, call.body, target.model, call.stream, state.beta
            )
        if state.chat is None:
            state.chat = to_chat(call.body)
        return p.adapter.chat_request(
            p.spec, target.body_for(state.chat), target.model, call.stream
        )

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        p = target.provider
        if call.passthrough:
            return p.adapter.messages_response(p.spec, raw)
        return p.adapter.chat_response(p.spec, raw, target.model)

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        if call.passthrough:
            return answer.body
        try:
            return orjson.dumps(to_message(orjson.loads(answer.body)))
        except SHAPE_ERRORS as exc:  # an OpenAI-compatible upstream's own body, passed on
            raise unexpected_answer(call) from exc

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        p = target.provider
        if call.passthrough:
            return p.adapter.messages_stream(p.spec, target.model)
        return p.adapter.chat_stream(p.spec, target.model, True)

    def encoder(self, call: Call) -> OutputEncoder | None:
        if call.passthrough:
            return PassthroughEncoder(anthropic_error_event)
        target = call.target
        if target is None:
            return AnthropicEncoder(call.model or "")
        return AnthropicEncoder(target.model, target.provider.name)
