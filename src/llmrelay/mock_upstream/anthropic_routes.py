"""Route factory for Anthropic's wire format: ``POST /v1/messages`` and ``/count_tokens``.

Scripted with the same :class:`~.script.Behaviour` knobs as the OpenAI routes (status,
delays, dropped streams, reply, usage) plus ``error_after_chunks`` for Anthropic's
in-stream ``error`` event. Authenticates with ``x-api-key`` when the mock has an
``api_key`` and, like Anthropic, refuses calls without ``anthropic-version``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmrelay.mock_answers import anthropic_format as af

from .script import Behaviour, send_event_stream
from .wire_handlers import WireHandlers, json_response

if TYPE_CHECKING:
    from .state import MockState


class _AnthropicHandlers(WireHandlers):
    # Anthropic words a body that is not an object like one that is not JSON.
    bad_json = not_an_object = "The request body is not valid JSON."

    @staticmethod
    def _headers(behaviour: Behaviour) -> dict[str, str]:
        headers = {"request-id": af.new_request_id()}
        headers.update(behaviour.headers)
        return headers

    def _error(
        self, status: int, behaviour: Behaviour | None = None, *, message: str | None = None
    ) -> web.Response:
        b = behaviour or Behaviour()
        body = af.error_body(status, message=message or b.error_message, error_type=b.error_type)
        return json_response(body, status=status, headers=self._headers(b))

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        expected = self._state.api_key
        if expected is not None and request.headers.get("x-api-key") != expected:
            return self._error(401)
        if not request.headers.get("anthropic-version"):
            return self._error(400, message="anthropic-version: header is required")
        return None

    async def messages(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        try:
            af.validate(body)
        except af.RequestError as exc:
            return self._error(400, message=str(exc))
        reply = af.plan_reply(
            body, reply=behaviour.reply, usage=behaviour.usage, tool_use_id=af.new_tool_use_id()
        )
        message_id, model = af.new_message_id(), str(body["model"])
        if body.get("stream") is not True:
            obj = af.message(message_id=message_id, model=model, reply=reply)
            return json_response(obj, headers=self._headers(behaviour))
        events = af.stream_events(message_id=message_id, model=model, reply=reply)
        terminator: bytes | None = af.STOP
        if behaviour.error_after_chunks is not None:
            events = [
                *itertools.islice(events, behaviour.error_after_chunks),
                af.error_event(message=behaviour.error_message, error_type=behaviour.error_type),
            ]
            terminator = None
        return await send_event_stream(
            request, events, behaviour, terminator=terminator, headers=self._headers(behaviour)
        )

    async def count_tokens(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        """``{"input_tokens": n}`` with n the prompt's words, as the messages route bills.

        Anthropic's count takes a Messages body without ``max_tokens`` (and refuses one).
        """
        if "max_tokens" in body:
            return self._error(400, message="max_tokens: Extra inputs are not permitted")
        try:
            af.validate({**body, "max_tokens": 1})
        except af.RequestError as exc:
            return self._error(400, message=str(exc))
        return json_response(
            {"input_tokens": af.prompt_tokens(body)}, headers=self._headers(behaviour)
        )


def anthropic_routes(state: MockState) -> list[web.RouteDef]:
    """Route factory for Anthropic's Messages API."""
    h = _AnthropicHandlers(state)
    return [
        web.post("/v1/messages", h.scripted(h.messages)),
        web.post("/v1/messages/count_tokens", h.scripted(h.count_tokens)),
    ]
