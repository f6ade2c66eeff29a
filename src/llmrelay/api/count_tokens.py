"""``POST /v1/messages/count_tokens``: Anthropic's token counting, for every model.

When the model is served by a family that counts tokens itself (Anthropic: the
``count_tokens`` capability) the body is passed through and the provider's own count
comes back (it is free there and exact). For any other provider the body is translated
as ``/v1/messages`` would translate it (so a body that call would refuse is refused
here too) and counted with the bundled ``cl100k_base`` tokenizer
(:mod:`llmrelay.tokenizer`), in a worker thread. That count is exact only for models
that use that encoding, so the answer says it is an estimate:
``x-llmrelay-token-count: estimate; cl100k_base``.

Counting is not a model call: it costs nothing, and counts for the model's own target
(a route config header does not apply). A pass-through does call the provider, so it
goes through the pipeline like any call (limits, attempts, a row at zero tokens and
zero cost); a local count makes no upstream call, takes no limit room and leaves no
row. Errors are in Anthropic's shape, like every ``/v1/messages`` answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.codec import require_model
from llmrelay.api.messages import AnthropicErrors, beta_header
from llmrelay.api.messages_translate import to_chat, validate
from llmrelay.errors import InvalidRequest
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall, Usage
from llmrelay.providers.chat_output import upstream_object
from llmrelay.stream_encoding import OutputEncoder
from llmrelay.tokenizer import ENCODING, count_chat

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


@dataclass(slots=True)
class CountState:
    #: The client's body, as the provider's count endpoint takes it.
    body: dict[str, Any]
    beta: str | None


def counts_itself(target: Target) -> bool:
    return target.provider.caps.count_tokens and not target.overrides


class CountTokensCodec(AnthropicErrors):
    route = "/v1/messages/count_tokens"
    routed = False

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        call.model = require_model(body)
        # The count takes a Messages body without max_tokens (Anthropic refuses one); the
        # rest is checked alike.
        if "max_tokens" in body:
            raise InvalidRequest("max_tokens: Extra inputs are not permitted", param="max_tokens")
        validate({**body, "max_tokens": 1})
        call.stream = False
        call.codec_state = CountState(body, beta_header(call.request))
        call.body = {**body, "max_tokens": 0}  # what limits see: it reserves no output

    async def local(self, call: Call, target: Target) -> bytes | None:
        """The count of a target that cannot count itself, or ``None`` to ask it."""
        if counts_itself(target):
            return None
        state: CountState = call.codec_state
        chat = to_chat({**state.body, "max_tokens": 1})
        counted = await asyncio.to_thread(count_chat, chat)
        call.extra_headers["x-llmrelay-token-count"] = f"estimate; {ENCODING}"
        return orjson.dumps({"input_tokens": counted})

    def build(self, call: Call, target: Target) -> UpstreamCall:
        state: CountState = call.codec_state
        p = target.provider
        call.passthrough = True
        return p.adapter.count_tokens_request(p.spec, state.body, target.model, state.beta)

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        upstream_object(target.provider.name, raw)  # a 200 that is not a JSON object: 502
        return ChatResult(body=raw, usage=Usage())  # free: a row at zero tokens

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        return answer.body

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        raise InvalidRequest("token counts are not streamed", param="stream")

    def encoder(self, call: Call) -> OutputEncoder | None:
        return None
