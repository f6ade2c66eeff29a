"""``POST /v1/chat/completions``: OpenAI's chat API, the gateway's internal form too.

The codec is nearly the identity: the client's body goes to each target's adapter as
is (with the route's ``override_params``), and what the adapter translates back is
already what the client reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.api.codec import OpenAIErrors, require_model, stream_flag
from llmrelay.errors import InvalidRequest
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall
from llmrelay.stream_encoding import OutputEncoder

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


def validate_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("missing required field: messages", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("field messages must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"messages[{i}] must be an object with a string role", param=f"messages[{i}]"
            )


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class ChatCompletionsCodec(OpenAIErrors):
    route = "/v1/chat/completions"
    routed = True

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        call.model = require_model(body)
        validate_messages(body)
        call.stream = stream_flag(body)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("field stream_options must be an object", param="stream_options")

    def build(self, call: Call, target: Target) -> UpstreamCall:
        assert call.body is not None
        p = target.provider
        return p.adapter.chat_request(p.spec, target.body_for(call.body), target.model, call.stream)

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        p = target.provider
        return p.adapter.chat_response(p.spec, raw, target.model)

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        return answer.body

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        assert call.body is not None
        p = target.provider
        return p.adapter.chat_stream(p.spec, target.model, wants_usage(call.body))

    def encoder(self, call: Call) -> OutputEncoder | None:
        return None
