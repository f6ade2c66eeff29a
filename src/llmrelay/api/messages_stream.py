"""OpenAI chunk events → Anthropic Messages stream events, for ``/v1/messages`` clients.

The inverse of :class:`llmrelay.providers.anthropic_stream.AnthropicStreamTranslator`,
as an explicit state machine over the OpenAI chunks the relay produces::

    first chunk        → message_start (usage so far unknown: zeros)
    reasoning_content  → a thinking block        ┐ a block of another kind, or a new
    content            → a text block            │ tool call, closes the open block
    tool_calls[i]      → a tool_use block,       │ (content_block_stop) and opens
                         arguments → input_json_delta ┘ the next (content_block_start)
    finish_reason      → remembered as stop_reason
    usage chunk        → remembered
    [DONE]             → content_block_stop, message_delta (stop_reason + usage), message_stop
    ": comment"        → ping

Errors become Anthropic's ``event: error`` with the error type its SDK expects.

The chunks may be an OpenAI-compatible upstream's own, relayed as they came: a choice,
tool call or usage of an unexpected type is left out (usage bounded by
:func:`~llmrelay.providers.base.token_count`); a chunk the machine still cannot read
ends the stream with a 502 (``unexpected_event``), never an exception of ours.
"""

from __future__ import annotations

from typing import Any

from llmrelay.errors import GatewayError
from llmrelay.providers.anthropic_convert import anthropic_error, anthropic_usage, stop_reason
from llmrelay.providers.stream_state import (
    SHAPE_ERRORS,
    json_object,
    small_index,
    unexpected_event,
)
from llmrelay.sse import encode_event, event_data

from .messages_translate import message_id

PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def _event(obj: dict[str, Any]) -> bytes:
    return encode_event(str(obj["type"]), obj)


class AnthropicEncoder:
    """One ``/v1/messages`` stream's state."""

    def __init__(self, model: str, provider: str = "upstream") -> None:
        self._model = model
        self._provider = provider
        self._started = False
        self._finished = False
        #: The open block: (kind, Anthropic index); kind is text | thinking | tool.
        self._open: tuple[str, int] | None = None
        self._next_index = 0
        #: OpenAI tool_calls index → Anthropic block index.
        self._tools: dict[int, int] = {}
        self._stop: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, event: bytes) -> list[bytes]:
        if self._finished:
            return []
        data = event_data(event)
        if data is None:
            return [PING] if event.startswith(b":") and self._started else []
        if data == b"[DONE]":
            return self._finish()
        chunk = json_object(data)
        if chunk is None:
            return []
        try:
            return self._chunk(chunk)
        except SHAPE_ERRORS as exc:
            raise unexpected_event(self._provider) from exc

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start(chunk))
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):
                out.extend(self._choice(choice))
        return out

    def error_event(self, exc: GatewayError) -> bytes:
        self._finished = True
        return _event(anthropic_error(exc))

    # -- states ----------------------------------------------------------------------------
    def _message_start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        self._model = str(chunk.get("model") or self._model)
        return _event(
            {
                "type": "message_start",
                "message": {
                    "id": message_id(str(chunk.get("id") or "")),
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }
        )

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            index = self._ensure(
                out, "thinking", {"type": "thinking", "thinking": "", "signature": ""}
            )
            out.append(self._delta(index, {"type": "thinking_delta", "thinking": reasoning}))
        content = delta.get("content")
        if isinstance(content, str) and content:
            index = self._ensure(out, "text", {"type": "text", "text": ""})
            out.append(self._delta(index, {"type": "text_delta", "text": content}))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out.extend(self._tool_call(call))
        finish = choice.get("finish_reason")
        if finish:
            self._stop = stop_reason(finish)
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = small_index(call.get("index"))
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        index = self._tools.get(position)
        if index is None:
            self._close(out)
            index = self._tools[position] = self._open_block(
                out,
                "tool",
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": {},
                },
            )
        arguments = function.get("arguments")
        if arguments and isinstance(arguments, str):
            out.append(self._delta(index, {"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _finish(self) -> list[bytes]:
        self._finished = True
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start({}))
        self._close(out)
        usage = anthropic_usage(self._usage)
        out.append(
            _event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                    "usage": usage,
                }
            )
        )
        out.append(_event({"type": "message_stop"}))
        return out

    # -- blocks ----------------------------------------------------------------------------
    def _ensure(self, out: list[bytes], kind: str, start: dict[str, Any]) -> int:
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._close(out)
        return self._open_block(out, kind, start)

    def _open_block(self, out: list[bytes], kind: str, start: dict[str, Any]) -> int:
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        out.append(_event({"type": "content_block_start", "index": index, "content_block": start}))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_event({"type": "content_block_stop", "index": self._open[1]}))
            self._open = None

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": index, "delta": delta})
