"""Route factory for OpenAI's wire format: chat completions, embeddings, moderations,
responses, models.

Authenticates with ``Authorization: Bearer <api_key>`` when the mock has an
``api_key``; errors, ids and headers (``x-request-id``, ``openai-version``) are
OpenAI's, built by :mod:`.openai_format` and :mod:`.responses_format`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmrelay.mock_answers import openai_format as oa
from llmrelay.mock_answers import responses_format as rf
from llmrelay.mock_answers.moderation_format import moderation_request_error, moderation_response

from .script import Behaviour, BehaviourError, send_event_stream
from .wire_handlers import WireHandlers, json_response

if TYPE_CHECKING:
    from .state import MockState


class _OpenAIHandlers(WireHandlers):
    """``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses`` and ``/v1/models``."""

    def _error(
        self,
        status: int,
        behaviour: Behaviour | None = None,
        *,
        message: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        b = behaviour or Behaviour()
        body = oa.error_body(
            status,
            message=message if message is not None else b.error_message,
            error_type=b.error_type,
            code=b.error_code,
            param=param,
        )
        return json_response(body, status=status, headers=self._headers(b))

    def _invalid_behaviour(self, exc: BehaviourError) -> web.Response:
        return self._error(400, message=str(exc), param="x-mock-behaviour")

    @staticmethod
    def _headers(behaviour: Behaviour) -> dict[str, str]:
        headers = {"x-request-id": oa.new_request_id(), "openai-version": "2020-10-01"}
        headers.update(behaviour.headers)
        return headers

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        expected = self._state.api_key
        if expected is None:
            return None
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {expected}":
            return None
        # Like OpenAI, the refusal quotes the key it got (the worst case: in full), which
        # is what a gateway must not pass on to its own clients.
        token = header.removeprefix("Bearer ")
        message = (
            "You didn't provide an API key."
            if not header
            else f"Incorrect API key provided: {token}."
        )
        return self._error(401, message=message)

    async def chat_completions(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        invalid = oa.chat_request_error(body)
        if invalid is not None:
            return self._error(400, message=invalid[0], param=invalid[1])
        reply = oa.plan_chat_reply(
            body,
            reply=behaviour.reply,
            usage=behaviour.usage,
            tool_call_id=oa.new_tool_call_id(),
        )
        completion_id, created, model = oa.new_completion_id(), int(time.time()), body["model"]
        if body.get("stream") is not True:
            completion = oa.chat_completion(
                completion_id=completion_id, created=created, model=model, reply=reply
            )
            return json_response(completion, headers=self._headers(behaviour))
        chunks = oa.chat_chunks(
            completion_id=completion_id,
            created=created,
            model=model,
            reply=reply,
            include_usage=oa.include_usage_requested(body),
        )
        events = [oa.encode_sse(chunk) for chunk in chunks]
        if behaviour.error_after_chunks is not None:
            # OpenAI ends a failing stream with a data event holding only ``error``.
            error = oa.error_body(
                500,
                message=behaviour.error_message,
                error_type=behaviour.error_type,
                code=behaviour.error_code,
            )
            events = [*events[: behaviour.error_after_chunks], oa.encode_sse(error)]
            return await send_event_stream(
                request, events, behaviour, headers=self._headers(behaviour)
            )
        return await send_event_stream(
            request, events, behaviour, terminator=oa.SSE_DONE, headers=self._headers(behaviour)
        )

    async def embeddings(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        invalid = oa.embeddings_request_error(body)
        if invalid is not None:
            return self._error(400, message=invalid[0], param=invalid[1])
        response = oa.embeddings_response(body)
        if behaviour.usage:
            response["usage"] = {**response["usage"], **behaviour.usage}
        return json_response(response, headers=self._headers(behaviour))

    async def moderations(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        """``POST /v1/moderations``: scores from trigger words (mock_answers)."""
        invalid = moderation_request_error(body)
        if invalid is not None:
            return self._error(400, message=invalid, param="input")
        return json_response(moderation_response(body), headers=self._headers(behaviour))

    async def responses(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        """``POST /v1/responses``: the Responses API, JSON or typed SSE events."""
        invalid = rf.request_error(body)
        if invalid is not None:
            return self._error(400, message=invalid[0], param=invalid[1])
        reply = rf.plan(
            body, reply=behaviour.reply, usage=behaviour.usage, call_id=oa.new_tool_call_id()
        )
        item_id = rf.new_item_id("fc_" if reply.tool_call is not None else "msg_")
        response_id, created = rf.new_response_id(), int(time.time())
        if body.get("stream") is not True:
            obj = rf.response(
                body, response_id=response_id, created=created, reply=reply, item_id=item_id
            )
            return json_response(obj, headers=self._headers(behaviour))
        events = rf.stream_events(
            body, response_id=response_id, created=created, reply=reply, item_id=item_id
        )
        if behaviour.error_after_chunks is not None:
            events = events[: behaviour.error_after_chunks]
            events.append(
                rf.error_event(
                    message=behaviour.error_message,
                    code=behaviour.error_code,
                    sequence_number=len(events),
                )
            )
        return await send_event_stream(request, events, behaviour, headers=self._headers(behaviour))

    async def models(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        listing = oa.models_response(self._state.models, created=1_700_000_000)
        return json_response(listing, headers=self._headers(behaviour))


def openai_routes(state: MockState) -> list[web.RouteDef]:
    """Route factory for OpenAI's wire format."""
    h = _OpenAIHandlers(state)
    return [
        web.post("/v1/chat/completions", h.scripted(h.chat_completions)),
        web.post("/v1/embeddings", h.scripted(h.embeddings)),
        web.post("/v1/moderations", h.scripted(h.moderations)),
        web.post("/v1/responses", h.scripted(h.responses)),
        web.get("/v1/models", h.scripted(h.models, use_queue=False), allow_head=False),
    ]
