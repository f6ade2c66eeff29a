"""``POST /v1/responses``: OpenAI's Responses API in front of every configured model.

Same pipeline as chat completions (auth, limits, routing, plug-ins, logging, cost).
Where the answering target serves the Responses API itself (the
``responses_passthrough`` capability: OpenAI) the request is passed through and the
answer relayed byte for byte; everywhere else it is translated to a chat completion
(:mod:`.responses_translate`) and the answer back to a ``response`` object or the
typed Responses stream (:mod:`.responses_stream`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.codec import OpenAIErrors, require_model, stream_flag, unexpected_answer
from llmrelay.api.responses_stream import ResponsesEncoder
from llmrelay.api.responses_translate import new_response_id, to_chat, to_response, validate
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall
from llmrelay.providers.openai_responses import ResponsesStreamRelay, responses_result
from llmrelay.providers.stream_state import SHAPE_ERRORS
from llmrelay.stream_encoding import OutputEncoder

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


@dataclass(slots=True)
class ResponsesState:
    """The ``response`` id and time of this call, the same in every translated event."""

    response_id: str = field(default_factory=new_response_id)
    created: int = field(default_factory=lambda: int(time.time()))


class ResponsesCodec(OpenAIErrors):
    route = "/v1/responses"
    routed = True

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        #: Scrubs secrets from upstream ``response.failed`` events passed through.
        self.redact = redact

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        call.model = require_model(body)
        call.stream = stream_flag(body)
        validate(body)
        call.codec_state = ResponsesState()

    def build(self, call: Call, target: Target) -> UpstreamCall:
        assert call.body is not None
        p = target.provider
        call.passthrough = p.caps.responses_passthrough
        if call.passthrough:
            return p.adapter.responses_request(p.spec, target.body_for(call.body), target.model)
        chat = to_chat(call.body, p.name)
        return p.adapter.chat_request(p.spec, target.body_for(chat), target.model, call.stream)

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        p = target.provider
        if call.passthrough:
            return responses_result(raw, p.name)
        return p.adapter.chat_response(p.spec, raw, target.model)

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        if call.passthrough:
            return answer.body
        assert call.body is not None
        state: ResponsesState = call.codec_state
        try:
            return orjson.dumps(
                to_response(call.body, orjson.loads(answer.body), state.response_id, state.created)
            )
        except SHAPE_ERRORS as exc:  # an OpenAI-compatible upstream's own body, passed on
            raise unexpected_answer(call) from exc

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        p = target.provider
        if call.passthrough:
            # A bound key's target scrubs its own credential too (routing/bound.py).
            redact = target.redactor.text if target.redactor is not None else self.redact
            return ResponsesStreamRelay(p.name, redact)
        return p.adapter.chat_stream(p.spec, target.model, True)

    def encoder(self, call: Call) -> OutputEncoder | None:
        assert call.body is not None
        state: ResponsesState = call.codec_state
        provider = call.target.provider.name if call.target is not None else "upstream"
        if call.passthrough:
            return _PassthroughErrors(call.body, state.response_id, state.created, provider)
        return ResponsesEncoder(call.body, state.response_id, state.created, provider)


class _PassthroughErrors(ResponsesEncoder):
    """Pass-through streams: events go out unchanged; only errors use the encoder.

    Each upstream event carries the next ``sequence_number``, so counting them lets an
    error event of ours continue the numbering.
    """

    def feed(self, event: bytes) -> list[bytes]:
        if b"data:" in event:
            self._seq += 1
        return [event]
