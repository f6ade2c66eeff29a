"""``POST /v1/responses``: OpenAI's Responses API in front of every configured model.

Same pipeline as chat completions (auth, limits, routing, logging, cost). Where the
answering target serves the Responses API itself (OpenAI: see
``OpenAICompatAdapter.responses_request``) the request is passed through and the
answer relayed byte for byte; everywhere else it is translated to a chat completion
(:mod:`.responses_translate`) and the answer back to a ``response`` object or the
typed Responses stream (:mod:`.responses_stream`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.openai import require_model, stream_flag
from llmrelay.api.responses_stream import ResponsesEncoder
from llmrelay.api.responses_translate import new_response_id, to_chat, to_response, validate
from llmrelay.asgi import Send
from llmrelay.context import Call
from llmrelay.pipeline import open_routed, read_answer, relay_stream, respond_json
from llmrelay.providers.base import ChatResult, UpstreamCall
from llmrelay.providers.openai_responses import ResponsesStreamRelay, responses_result
from llmrelay.routing.resolve import Target

if TYPE_CHECKING:
    from llmrelay.app import Gateway


def _native(t: Target, body: dict[str, Any]) -> UpstreamCall | None:
    if not t.provider.caps.responses_passthrough:
        return None
    return t.provider.adapter.responses_request(t.provider.spec, t.body_for(body), t.model)


class Responses:
    """The ``/v1/responses`` endpoint."""

    def validate(self, body: dict[str, Any]) -> tuple[str, bool]:
        model = require_model(body)
        stream = stream_flag(body)
        validate(body)
        return model, stream

    async def execute(self, gw: Gateway, call: Call, send: Send) -> None:
        assert call.body is not None
        body = call.body
        stream = call.stream
        passed: set[str] = set()  # providers that got the request as is

        def build(t: Target) -> UpstreamCall:
            native = _native(t, body)
            if native is not None:
                passed.add(t.provider.name)
                return native
            passed.discard(t.provider.name)
            chat = to_chat(body, t.provider.name)
            return t.provider.adapter.chat_request(t.provider.spec, t.body_for(chat), t.model,
                                                   stream)

        response_id, created = new_response_id(), int(time.time())

        def parse(t: Target, raw: bytes) -> ChatResult:
            if t.provider.name in passed:
                return responses_result(raw, t.provider.name)
            result = t.provider.adapter.chat_response(t.provider.spec, raw, t.model)
            result.body = orjson.dumps(
                to_response(body, orjson.loads(result.body), response_id, created))
            return result

        resp = await open_routed(gw, call, build, stream=stream,
                                 parse=None if stream else parse)
        assert call.target is not None
        provider = call.target.provider
        passthrough = provider.name in passed
        if stream:
            if passthrough:
                relay = ResponsesStreamRelay(provider.name, gw.router.redactor.text)
                await relay_stream(gw, call, resp, relay, send,
                                   encoder=_PassthroughErrors(body, response_id, created))
                return
            translator = provider.adapter.chat_stream(provider.spec, call.target.model, True)
            await relay_stream(gw, call, resp, translator, send,
                               encoder=ResponsesEncoder(body, response_id, created))
            return
        result = await read_answer(call, resp, parse)
        out = result.body
        call.usage = result.usage
        call.finish_reason = result.finish_reason
        call.response_body = out
        await respond_json(call, send, out)


class _PassthroughErrors(ResponsesEncoder):
    """Pass-through streams: events go out unchanged; only errors use the encoder.

    Each upstream event carries the next ``sequence_number``, so counting them lets an
    error event of ours continue the numbering.
    """

    def feed(self, event: bytes) -> list[bytes]:
        if b"data:" in event:
            self._seq += 1
        return [event]
