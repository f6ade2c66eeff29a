"""Anthropic's Messages stream → OpenAI ``chat.completion.chunk`` events, as they arrive.

An explicit state machine over Anthropic's SSE events
(https://docs.anthropic.com/en/docs/build-with-claude/streaming)::

    message_start → (content_block_start → content_block_delta* → content_block_stop)*
                  → message_delta → message_stop            (ping anywhere; error ends it)

Each content block becomes OpenAI deltas as soon as it arrives: ``text_delta`` →
``content``, a ``tool_use`` block → a new ``tool_calls`` entry (its ``index`` counts tool
blocks only) whose ``input_json_delta`` fragments become ``arguments`` fragments,
``thinking_delta`` → ``reasoning_content``. The forced JSON-mode tool streams as
``content``. ``message_stop`` ends the stream with the usage chunk (when the client
asked) and ``[DONE]``; an ``error`` event raises, so the relay ends the stream with an
error event of the client's format.

In *pass-through* mode (Anthropic client, Anthropic upstream) the same machine only
watches: events are forwarded unchanged while usage and the stop reason are noted.

An event of an unexpected shape (an ``index`` that is no number, a ``content_block``
that is no object ...) ends a translated stream with a 502 (``unexpected_event``); in
pass-through it is forwarded as it came and not counted, as the OpenAI relay does.
Usage counts of any type are bounded where they are read (:func:`token_count`).
"""

from __future__ import annotations

import time
from typing import Any

from llmrelay.providers.anthropic_convert import (
    JSON_TOOL,
    finish_reason,
    openai_usage,
    upstream_error,
)
from llmrelay.providers.base import Usage, any_count
from llmrelay.providers.stream_state import (
    SHAPE_ERRORS,
    StreamProgress,
    json_object,
    small_index,
    unexpected_event,
)
from llmrelay.sse import DONE, encode_json, event_data

_TEXT, _TOOL, _JSON, _THINKING, _OTHER = range(5)


_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def usage_of(raw: Any) -> Usage | None:
    """Anthropic usage as ours (None when it holds no count: see :func:`any_count`)."""
    if not isinstance(raw, dict) or not any_count(*map(raw.get, _COUNTS)):
        return None
    u = openai_usage(raw)
    details = u["prompt_tokens_details"]
    return Usage(
        prompt_tokens=u["prompt_tokens"],
        completion_tokens=u["completion_tokens"],
        total_tokens=u["total_tokens"],
        cached_tokens=details["cached_tokens"],
        cache_write_tokens=details["cache_write_tokens"],
    )


class AnthropicStreamTranslator(StreamProgress):
    """One Anthropic stream; ``feed`` takes raw SSE events, returns OpenAI SSE bytes."""

    def __init__(
        self,
        provider: str,
        model: str,
        client_wants_usage: bool,
        *,
        passthrough: bool = False,
        created: int | None = None,
    ) -> None:
        super().__init__()
        self._provider = provider
        self._wants_usage = client_wants_usage
        self._passthrough = passthrough
        self._id = ""
        self._model = model
        self._created = int(time.time()) if created is None else created
        #: Anthropic block index → what it translates to.
        self._blocks: dict[int, int] = {}
        #: Anthropic block index → OpenAI tool_calls index.
        self._tool_index: dict[int, int] = {}
        self._raw_usage: dict[str, Any] = {}
        self.stop_reason: str | None = None

    # -- the state machine --------------------------------------------------------------
    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None:
            return [event] if self._passthrough else []
        payload = json_object(data)
        if payload is None:
            return [event] if self._passthrough else []
        kind = payload.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return [event] if self._passthrough else []
        try:
            out: list[bytes] = handler(self, payload)
        except SHAPE_ERRORS as exc:
            if self._passthrough:
                return [event]  # forwarded as it came, not counted
            raise unexpected_event(self._provider) from exc
        return [event] if self._passthrough else out

    def end(self) -> list[bytes]:
        return []

    def _message_start(self, p: dict[str, Any]) -> list[bytes]:
        message = _object(p.get("message"))
        found = message.get("id")
        self._id = found if isinstance(found, str) else ""
        model = message.get("model")
        self._model = model if isinstance(model, str) and model else self._model
        self._note_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, p: dict[str, Any]) -> list[bytes]:
        index = small_index(p.get("index"))
        block = _object(p.get("content_block"))
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _TEXT
            text = block.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "tool_use" and block.get("name") == JSON_TOOL:
            self._blocks[index] = _JSON
            return []
        if kind == "tool_use":
            self._blocks[index] = _TOOL
            position = self._tool_index[index] = len(self._tool_index)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            self.content_chars += len(str(block.get("name") or ""))
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._blocks[index] = _THINKING
            return []
        self._blocks[index] = _OTHER  # server tool results, redacted thinking: not for OpenAI
        return []

    def _block_delta(self, p: dict[str, Any]) -> list[bytes]:
        index = small_index(p.get("index"))
        delta = _object(p.get("delta"))
        kind = self._blocks.get(index, _OTHER)
        dtype = delta.get("type")
        if dtype == "text_delta" and kind == _TEXT:
            text = str(delta.get("text") or "")
            self.content_chars += len(text)
            return [self._chunk({"content": text})] if text else []
        if dtype == "input_json_delta" and kind in (_TOOL, _JSON):
            fragment = str(delta.get("partial_json") or "")
            if not fragment:
                return []
            self.content_chars += len(fragment)
            if kind == _JSON:
                return [self._chunk({"content": fragment})]
            call = {"index": self._tool_index[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        if dtype == "thinking_delta" and kind == _THINKING:
            text = str(delta.get("thinking") or "")
            self.content_chars += len(text)
            return [self._chunk({"reasoning_content": text})] if text else []
        return []  # signature_delta, citations_delta: nothing OpenAI can carry

    def _message_delta(self, p: dict[str, Any]) -> list[bytes]:
        self._note_usage(p.get("usage"))
        stop = _object(p.get("delta")).get("stop_reason")
        if stop is None:
            return []
        self.stop_reason = stop if isinstance(stop, str) else None
        finish = finish_reason(stop)
        if stop == "tool_use" and not self._tool_index:
            finish = "stop"  # the only "tool" was the JSON-mode one: a plain answer
        self.finish_reason = finish
        return [self._chunk({}, finish)]

    def _message_stop(self, p: dict[str, Any]) -> list[bytes]:
        self.done = True
        out: list[bytes] = []
        if self._wants_usage and self._raw_usage:
            usage_chunk = self._base()
            usage_chunk["choices"] = []
            usage_chunk["usage"] = openai_usage(self._raw_usage)
            out.append(encode_json(usage_chunk))
        out.append(DONE)
        return out

    def _ping(self, p: dict[str, Any]) -> list[bytes]:
        return [b": ping\n\n"]  # keeps idle-timeout proxies between us and the client calm

    def _error(self, p: dict[str, Any]) -> list[bytes]:
        raise upstream_error(self._provider, None, p, {})

    # -- helpers ------------------------------------------------------------------------
    def _note_usage(self, usage: Any) -> None:
        """Usage counts are cumulative; later events overwrite the fields they carry."""
        if not isinstance(usage, dict):
            return
        for key, value in usage.items():
            if value is not None:
                self._raw_usage[key] = value
        self.usage = usage_of(self._raw_usage)

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            # No ``system_fingerprint``: Anthropic has none, and OpenAI's schema types the
            # field as a string, so ``null`` fails strict clients; omitted is allowed.
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = self._base()
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._wants_usage:
            chunk["usage"] = None
        return encode_json(chunk)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_HANDLERS: dict[str, Any] = {
    "message_start": AnthropicStreamTranslator._message_start,
    "content_block_start": AnthropicStreamTranslator._block_start,
    "content_block_delta": AnthropicStreamTranslator._block_delta,
    "content_block_stop": lambda self, p: [],
    "message_delta": AnthropicStreamTranslator._message_delta,
    "message_stop": AnthropicStreamTranslator._message_stop,
    "ping": AnthropicStreamTranslator._ping,
    "error": AnthropicStreamTranslator._error,
}
