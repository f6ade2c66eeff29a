"""``POST /v1/messages``: Anthropic's Messages API in front of every configured model.

The official ``anthropic`` SDK (and tools built on it) can use any model llmrelay
routes to: the request is translated to an OpenAI chat body
(:mod:`.messages_translate`), goes through the same pipeline as ``/v1/chat/completions``
(auth with ``x-api-key``, limits, routing, logging, cost), and the answer is translated
back — a ``message`` object, or Anthropic's SSE events (:mod:`.messages_stream`).
Errors leave in Anthropic's shape, ``{"type": "error", "error": {type, message}}``.

When the target that answers is itself an Anthropic provider (and its route adds no
parameter overrides), the client's body is sent as is and the answer relayed
untouched: no double translation, so Anthropic-only features (thinking signatures,
prompt caching, server tools, citations) keep working.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.messages_stream import AnthropicEncoder
from llmrelay.api.messages_translate import to_chat, to_message, validate
from llmrelay.api.openai import require_model, stream_flag
from llmrelay.asgi import Request, Send
from llmrelay.context import Call
from llmrelay.errors import GatewayError, InvalidRequest
from llmrelay.pipeline import open_routed, read_answer, relay_stream, respond_json
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.base import ChatResult, UpstreamCall
from llmrelay.routing.resolve import Target

if TYPE_CHECKING:
    from llmrelay.app import Gateway


#: What an ``anthropic-beta`` value may hold: beta names, commas, spaces.
_BETA = re.compile(r"[\x20-\x7e]*")


def beta_header(request: Request) -> str | None:
    """The client's ``anthropic-beta`` header, which is passed on to Anthropic.

    Checked first: a control character in it made the HTTP client refuse the whole
    upstream call (``ValueError: Forbidden control character``), a 500.
    """
    beta = request.header("anthropic-beta")
    if beta is not None and _BETA.fullmatch(beta) is None:
        raise InvalidRequest("anthropic-beta: only printable ASCII is allowed (beta names "
                             "separated by commas)", param="anthropic-beta")
    return beta


def _native(target: Target) -> Any:
    """The adapter's pass-through builder when the target can take the body as is."""
    if target.overrides or not target.provider.caps.messages_passthrough:
        return None
    return target.provider.adapter.messages_request


class Messages:
    """The ``/v1/messages`` endpoint."""

    def validate(self, body: dict[str, Any]) -> tuple[str, bool]:
        model = require_model(body)
        stream = stream_flag(body)
        validate(body)
        return model, stream

    def render_error(self, exc: GatewayError) -> bytes:
        return orjson.dumps(anthropic_error(exc))

    async def execute(self, gw: Gateway, call: Call, send: Send) -> None:
        assert call.body is not None
        body = call.body
        stream = call.stream
        beta = beta_header(call.request)
        translated: list[dict[str, Any]] = []  # the chat body, made once when first needed

        def build(t: Target) -> UpstreamCall:
            native = _native(t)
            if native is not None:
                call_: UpstreamCall = native(t.provider.spec, body, t.model, stream, beta)
                return call_
            if not translated:
                translated.append(to_chat(body))
            return t.provider.adapter.chat_request(t.provider.spec, t.body_for(translated[0]),
                                                   t.model, stream)

        def parse(t: Target, raw: bytes) -> ChatResult:
            adapter: Any = t.provider.adapter
            if _native(t) is not None:
                passed: ChatResult = adapter.messages_response(t.provider.spec, raw)
                return passed
            result: ChatResult = adapter.chat_response(t.provider.spec, raw, t.model)
            result.body = orjson.dumps(to_message(orjson.loads(result.body)))
            return result

        resp = await open_routed(gw, call, build, stream=stream,
                                 parse=None if stream else parse)
        assert call.target is not None
        provider = call.target.provider
        adapter: Any = provider.adapter
        passthrough = _native(call.target) is not None
        if passthrough and call.upstream_request_id is not None:
            # What the anthropic SDK reads as ``_request_id``: Anthropic's own, passed on.
            call.extra_headers["request-id"] = call.upstream_request_id
        if stream:
            if passthrough:
                translator = adapter.messages_stream(provider.spec, call.target.model)
                await relay_stream(gw, call, resp, translator, send,
                                   error_event=self._error_event)
                return
            translator = adapter.chat_stream(provider.spec, call.target.model, True)
            await relay_stream(gw, call, resp, translator, send,
                               encoder=AnthropicEncoder(call.target.model))
            return
        result = await read_answer(call, resp, parse)
        out = result.body
        call.usage = result.usage
        call.finish_reason = result.finish_reason
        call.response_body = out
        await respond_json(call, send, out)

    @staticmethod
    def _error_event(exc: GatewayError) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(anthropic_error(exc)) + b"\n\n"
