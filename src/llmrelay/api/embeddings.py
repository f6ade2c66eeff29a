"""``POST /v1/embeddings``: OpenAI's embeddings API in front of every family that embeds.

A target whose family has no embeddings API fails its attempt with
:class:`~llmrelay.errors.CapabilityMissing` before anything is sent, so a fallback
route moves past it; ``encoding_format: base64`` is honoured for families that answer
floats only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrelay.api.codec import OpenAIErrors, require_model
from llmrelay.errors import CapabilityMissing, InvalidRequest
from llmrelay.providers.base import ChatResult, StreamTranslator, UpstreamCall
from llmrelay.providers.chat_output import FLOAT_EMBEDDINGS, embeddings_as_base64
from llmrelay.stream_encoding import OutputEncoder

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target


class EmbeddingsCodec(OpenAIErrors):
    route = "/v1/embeddings"
    routed = True

    def parse(self, call: Call, body: dict[str, Any]) -> None:
        call.model = require_model(body)
        if "input" not in body:
            raise InvalidRequest("missing required field: input", param="input")
        value = body["input"]
        if not isinstance(value, str | list) or (isinstance(value, list) and not value):
            raise InvalidRequest("field input must be a string or a non-empty array", param="input")
        call.stream = False

    def build(self, call: Call, target: Target) -> UpstreamCall:
        assert call.body is not None
        p = target.provider
        if not p.caps.embeddings:
            raise CapabilityMissing(
                p.name, "embeddings", "use an embeddings model of another provider"
            )
        return p.adapter.embeddings_request(p.spec, target.body_for(call.body), target.model)

    def decode(self, call: Call, target: Target, raw: bytes) -> ChatResult:
        assert call.body is not None
        p = target.provider
        result = p.adapter.embeddings_response(p.spec, raw, target.model)
        if result.extra.get(FLOAT_EMBEDDINGS) and call.body.get("encoding_format") == "base64":
            result.body = embeddings_as_base64(result.body)
        return result

    def encode(self, call: Call, answer: ChatResult) -> bytes:
        return answer.body

    def translator(self, call: Call, target: Target) -> StreamTranslator:
        raise InvalidRequest("embeddings are not streamed", param="stream")

    def encoder(self, call: Call) -> OutputEncoder | None:
        return None
