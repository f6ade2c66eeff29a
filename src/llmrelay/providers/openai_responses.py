"""The Responses API passed through to providers that have it (OpenAI itself).

Like chat completions on OpenAI-compatible hosts, bodies and stream events are relayed
byte for byte; llmrelay reads them only for usage (``response.usage``, in the
``response.completed`` / ``.incomplete`` / ``.failed`` event of a stream) and the
outcome. The Responses stream has no ``[DONE]``: one of those three events (or an
``error`` event) is its end.

Reading is lenient, as the chat relay's (``openai_compat._tally``): a field of an
unexpected type is not counted (usage bounded by :func:`token_count`), the event is
relayed as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.errors import UpstreamError
from llmrelay.providers.base import ChatResult, Usage
from llmrelay.providers.openai_compat import answer_object
from llmrelay.providers.stream_state import StreamProgress, json_object
from llmrelay.sse import event_data

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: Responses API error codes → HTTP status, for an ``error`` event inside a 200 stream.
_CODE_STATUS = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_request_error": 400,
    "server_error": 500,
}


def finish_of(response: dict[str, Any]) -> str | None:
    """The chat-style finish reason of a response object (for logs)."""
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    if status == "failed":
        return "error"
    outputs = response.get("output")
    if not isinstance(outputs, list):
        outputs = []
    if any(isinstance(o, dict) and o.get("type") == "function_call" for o in outputs):
        return "tool_calls"
    return "stop" if status == "completed" else None


def responses_result(body: bytes, provider: str) -> ChatResult:
    """A passed-through ``response`` object (checked to be one: see ``answer_object``)."""
    parsed = answer_object(provider, body, "output", "a response object")
    return ChatResult(
        body=body, usage=Usage.from_openai(parsed.get("usage")), finish_reason=finish_of(parsed)
    )


class ResponsesStreamRelay(StreamProgress):
    """Forwards Responses API events unchanged, noting usage and the outcome.

    The one exception: a ``response.failed`` event carries the upstream's error message,
    which may echo a credential, so it goes out through ``redact`` (the gateway's
    :class:`~llmrelay.redaction.Redactor`); an ``error`` event is raised and ends the
    stream with the relay's own scrubbed error event.
    """

    __slots__ = ("_provider", "_redact")

    def __init__(self, provider: str, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._provider = provider
        self._redact = redact

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None:
            return [event]
        payload = json_object(data)
        if payload is None:
            return [event]
        kind = payload.get("type")
        if not isinstance(kind, str):
            return [event]
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self.content_chars += len(str(payload.get("delta") or ""))
        elif kind in _FINAL:
            response = payload.get("response")
            if not isinstance(response, dict):
                response = {}
            self.usage = Usage.from_openai(response.get("usage")) or self.usage
            self.finish_reason = finish_of(response)
            self.done = True
            if kind == "response.failed" and self._redact is not None:
                return [self._redact(event.decode("utf-8", "replace")).encode()]
        elif kind == "error":
            code = payload.get("code")
            if not isinstance(code, str):
                code = None  # hashed, logged and sent on: a string or nothing
            raise UpstreamError(
                str(payload.get("message") or f"upstream {self._provider} failed mid-stream"),
                status=_CODE_STATUS.get(code or "", 500),
                code=code,
                provider=self._provider,
                error_type=str(code) if code else None,
            )
        return [event]

    def end(self) -> list[bytes]:
        return []
