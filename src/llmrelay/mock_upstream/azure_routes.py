"""Route factory for Azure OpenAI: OpenAI bodies behind deployment URLs.

``/openai/deployments/{deployment}/chat/completions?api-version=...`` and
``.../embeddings``, authenticated with the ``api-key`` header. Answers are OpenAI's
shapes plus Azure's content-filter annotations (``prompt_filter_results`` on the
answer and on a leading stream chunk with no choices, ``content_filter_results`` per
choice), which a pass-through must deliver untouched. Errors use Azure's shape, whose
``code`` is a string (``"401"``, ``"429"``, ``"content_filter"``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmrelay.mock_answers import openai_format as oa

from .script import Behaviour, send_event_stream
from .wire_handlers import WireHandlers, json_response

if TYPE_CHECKING:
    from .state import MockState

_SAFE = {"filtered": False, "severity": "safe"}
FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": FILTER_RESULTS}]
_MESSAGES = {
    401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource.",
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
    "2024-10-21 have exceeded token rate limit of your current pricing tier. Please "
    "retry after 1 second.",
}


def _json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(
        obj, status=status, headers={"apim-request-id": oa.new_request_id(), **(headers or {})}
    )


class _AzureHandlers(WireHandlers):
    def _error(
        self, status: int, behaviour: Behaviour | None = None, *, message: str | None = None
    ) -> web.Response:
        b = behaviour or Behaviour()
        error: dict[str, Any] = {
            "code": b.error_code or str(status),
            "message": message or b.error_message or _MESSAGES.get(status, "Request failed."),
        }
        if status not in (401, 404):
            error.update({"param": None, "type": b.error_type})
        return _json({"error": error}, status, dict(b.headers))

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        key = request.headers.get("api-key")
        if not key or (self._state.api_key is not None and key != self._state.api_key):
            return self._error(401)
        if not request.query.get("api-version"):
            return self._error(404)
        return None

    async def chat(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        model = request.match_info["deployment"]
        body = {**body, "model": model}
        problem = oa.chat_request_error(body)
        if problem is not None:
            return self._error(400, message=problem[0])
        reply = oa.plan_chat_reply(
            body, reply=behaviour.reply, usage=behaviour.usage, tool_call_id=oa.new_tool_call_id()
        )
        completion_id, created = oa.new_completion_id(), int(time.time())
        if body.get("stream") is not True:
            obj = oa.chat_completion(
                completion_id=completion_id, created=created, model=model, reply=reply
            )
            obj["prompt_filter_results"] = PROMPT_FILTER
            for choice in obj["choices"]:
                choice["content_filter_results"] = FILTER_RESULTS
            return _json(obj, headers=dict(behaviour.headers))
        chunks = oa.chat_chunks(
            completion_id=completion_id,
            created=created,
            model=model,
            reply=reply,
            include_usage=oa.include_usage_requested(body),
        )
        lead = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTER,
        }
        events = [oa.encode_sse(lead), *(oa.encode_sse(c) for c in chunks)]
        return await send_event_stream(
            request, events, behaviour, terminator=oa.SSE_DONE, headers=dict(behaviour.headers)
        )

    async def embeddings(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any]
    ) -> web.StreamResponse:
        body = {**body, "model": request.match_info["deployment"]}
        problem = oa.embeddings_request_error(body)
        if problem is not None:
            return self._error(400, message=problem[0])
        return _json(oa.embeddings_response(body), headers=dict(behaviour.headers))


def azure_routes(state: MockState) -> list[web.RouteDef]:
    """Route factory for Azure OpenAI's deployment-scoped data plane."""
    h = _AzureHandlers(state)
    return [
        web.post("/openai/deployments/{deployment}/chat/completions", h.scripted(h.chat)),
        web.post("/openai/deployments/{deployment}/embeddings", h.scripted(h.embeddings)),
    ]
