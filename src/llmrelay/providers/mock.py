"""The built-in ``mock`` provider: an in-process transport that answers like OpenAI.

It lets ``llmrelay serve`` answer with no provider keys and no network (``mock/echo``
echoes the last user message), through the very same adapter, relay and logging path
as a real OpenAI upstream: tool calls and structured outputs included, their JSON an
instance of the request's schema (docs/mock.md). It builds its answers with
:mod:`llmrelay.mock_answers`, as the mock upstream server does, so the two cannot drift
apart; that package imports no aiohttp, so serving never loads the mock server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmrelay.mock_answers import moderation_format
from llmrelay.mock_answers import openai_format as fmt
from llmrelay.providers.base import UpstreamCall
from llmrelay.sse import DONE


class CannedResponse:
    """An upstream response held in memory: the transport-side shape the relay reads."""

    __slots__ = ("_chunks", "headers", "status")

    def __init__(self, status: int, chunks: list[bytes], content_type: str) -> None:
        self.status = status
        self.headers = {"content-type": content_type}
        self._chunks = chunks

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        self._chunks = []


def _error(status: int, message: str, param: str | None = None) -> CannedResponse:
    body = fmt.error_body(status, message=message, param=param)
    return CannedResponse(status, [orjson.dumps(body)], "application/json")


class MockTransport:
    """Answers OpenAI-shaped calls in process, deterministically."""

    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> CannedResponse:
        try:
            body: Any = orjson.loads(call.body) if call.body else {}
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        path = call.url.rsplit("/", 1)[-1]
        if path == "completions":
            return self._chat(body, stream)
        if path == "embeddings":
            problem = fmt.embeddings_request_error(body)
            if problem is not None:
                return _error(400, problem[0], problem[1])
            return CannedResponse(
                200, [orjson.dumps(fmt.embeddings_response(body))], "application/json"
            )
        if path == "moderations":
            invalid = moderation_format.moderation_request_error(body)
            if invalid is not None:
                return _error(400, invalid, "input")
            return CannedResponse(
                200, [orjson.dumps(moderation_format.moderation_response(body))], "application/json"
            )
        return _error(404, f"Unknown path {path}")

    def _chat(self, body: Any, stream: bool) -> CannedResponse:
        problem = fmt.chat_request_error(body)
        if problem is not None:
            return _error(400, problem[0], problem[1])
        reply = fmt.plan_chat_reply(body)
        model = str(body.get("model"))
        completion_id, created = fmt.new_completion_id(), int(time.time())
        if not stream:
            obj = fmt.chat_completion(
                completion_id=completion_id, created=created, model=model, reply=reply
            )
            return CannedResponse(200, [orjson.dumps(obj)], "application/json")
        chunks = fmt.chat_chunks(
            completion_id=completion_id,
            created=created,
            model=model,
            reply=reply,
            include_usage=fmt.include_usage_requested(body),
        )
        events = [fmt.encode_sse(c) for c in chunks]
        events.append(DONE)
        return CannedResponse(200, events, "text/event-stream")

    async def close(self) -> None:
        return None
