"""Guardrails over streams passed through in the provider's own events.

When the answering target speaks the client's API (Anthropic behind ``/v1/messages``,
OpenAI behind ``/v1/responses``), the stream steps see the provider's events instead
of internal chunks. The texts are the same (text and tool-argument deltas) and are
checked and restored with the same :class:`~llmrelay.guardrails.scan.TextGuard`; what
differs is where they sit, where a text ends (the held-back rest goes out as one more
delta event just before that) and the events that repeat a whole text (Responses'
``*.done`` and ``response.completed``), which get the text the client was sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.guardrails.config import GuardrailsConfig
from llmrelay.guardrails.scan import GuardState, TextGuard
from llmrelay.plugins.chain import StreamStep
from llmrelay.sse import encode_event, encode_json, event_data, event_name

if TYPE_CHECKING:
    from llmrelay.context import Call


def _encode(event: bytes, obj: dict[str, Any]) -> bytes:
    name = event_name(event)
    return encode_event(name, obj) if name else encode_json(obj)


class SyncStep(StreamStep):
    """A stream step whose work is plain CPU (no I/O): :meth:`events` and :meth:`finish`
    do it, so a caller can run them off the event loop (the NER's thread: see
    :class:`~llmrelay.guardrails.plugin.OffLoop`)."""

    def events(self, events: list[bytes]) -> list[bytes]:
        return events

    def finish(self, events: list[bytes]) -> list[bytes]:
        return self.events(events)

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return self.events(events)

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        return self.finish(events)


class _Guard(SyncStep, ABC):
    def __init__(self, config: GuardrailsConfig, state: GuardState, restoring: bool) -> None:
        self.config, self.state, self.restoring = config, state, restoring
        self.texts: dict[Any, TextGuard] = {}
        #: What the client was sent of each text, for events that repeat it whole.
        self.sent: dict[Any, str] = {}

    def _feed(self, key: Any, delta: str) -> str:
        guard = self.texts.get(key)
        if guard is None:
            guard = self.texts[key] = TextGuard(self.config, self.state, self.restoring)
        out = guard.feed(delta)
        self.sent[key] = self.sent.get(key, "") + out
        return out

    def _flush(self, key: Any) -> str:
        guard = self.texts.pop(key, None)
        out = guard.flush() if guard is not None else ""
        if out:
            self.sent[key] = self.sent.get(key, "") + out
        return out

    def events(self, events: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            data = event_data(event)
            obj = orjson.loads(data) if data and data.startswith(b"{") else None
            if not isinstance(obj, dict):
                out.append(event)
                continue
            out.extend(self._event(event, obj))
        return out

    @abstractmethod
    def _event(self, event: bytes, obj: dict[str, Any]) -> list[bytes]:
        """One provider event, guarded: what goes on now (held text stays behind)."""


class AnthropicGuard(_Guard):
    """Messages events: ``content_block_delta`` text / ``partial_json`` per block index;
    a block's held text goes out before its ``content_block_stop``."""

    _FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}

    def __init__(self, config: GuardrailsConfig, state: GuardState, restoring: bool) -> None:
        super().__init__(config, state, restoring)
        self.kinds: dict[Any, str] = {}

    def _event(self, event: bytes, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        index = obj.get("index")
        if kind == "content_block_delta" and isinstance(obj.get("delta"), dict):
            delta = obj["delta"]
            field = self._FIELDS.get(str(delta.get("type")))
            if field is None or not isinstance(delta.get(field), str):
                return [event]  # thinking and signatures pass untouched
            self.kinds[index] = str(delta["type"])
            delta[field] = self._feed(index, delta[field])
            return [_encode(event, obj)] if delta[field] else []
        if kind == "content_block_stop":
            return [*self._rest(index), event]
        if kind in ("message_delta", "message_stop"):
            rest = [e for i in list(self.texts) for e in self._rest(i)]
            return [*rest, event]
        return [event]

    def _rest(self, index: Any) -> list[bytes]:
        held = self._flush(index)
        if not held:
            return []
        kind = self.kinds.get(index, "text_delta")
        delta = {"type": kind, self._FIELDS[kind]: held}
        return [
            encode_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        ]


class ResponsesGuard(_Guard):
    """Responses events: text and argument deltas per item (and content part); the
    held rest goes out as one more delta before the ``.done`` event, and every event
    after an added one is renumbered so ``sequence_number`` still counts up by one."""

    _DELTAS = {
        "response.output_text.delta": "response.output_text.done",
        "response.function_call_arguments.delta": "response.function_call_arguments.done",
    }

    def __init__(self, config: GuardrailsConfig, state: GuardState, restoring: bool) -> None:
        super().__init__(config, state, restoring)
        self.shift = 0

    def _number(self, obj: dict[str, Any]) -> None:
        if self.shift and isinstance(obj.get("sequence_number"), int):
            obj["sequence_number"] += self.shift

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[Any, Any]:
        return obj.get("item_id"), obj.get("content_index")

    def _event(self, event: bytes, obj: dict[str, Any]) -> list[bytes]:
        kind = obj.get("type")
        if kind in self._DELTAS and isinstance(obj.get("delta"), str):
            obj["delta"] = self._feed(self._key(obj), obj["delta"])
            if not obj["delta"]:
                self.shift -= 1  # this event is not sent: later numbers close the gap
                return []
            self._number(obj)
            return [_encode(event, obj)]
        out: list[bytes] = []
        if kind in ("response.output_text.done", "response.function_call_arguments.done"):
            key = self._key(obj)
            held = self._flush(key)
            if held:
                delta_kind = (
                    "response.output_text.delta"
                    if kind.endswith("text.done")
                    else "response.function_call_arguments.delta"
                )
                added = {
                    k: v
                    for k, v in obj.items()
                    if k not in ("text", "arguments", "type", "logprobs")
                }
                added.update(type=delta_kind, delta=held)
                self._number(added)
                out.append(encode_event(delta_kind, added))
                self.shift += 1
            field = "text" if "text" in obj else "arguments"
            if key in self.sent:
                obj[field] = self.sent[key]
        elif kind == "response.content_part.done" and isinstance(obj.get("part"), dict):
            self._part(obj.get("item_id"), obj.get("content_index"), obj["part"])
        elif kind == "response.output_item.done" and isinstance(obj.get("item"), dict):
            self._item(obj["item"])
        elif isinstance(obj.get("response"), dict):
            for item in obj["response"].get("output") or []:
                if isinstance(item, dict):
                    self._item(item)
        self._number(obj)
        out.append(_encode(event, obj))
        return out

    def _part(self, item_id: Any, index: Any, part: dict[str, Any]) -> None:
        sent = self.sent.get((item_id, index))
        if sent is not None and isinstance(part.get("text"), str):
            part["text"] = sent

    def _item(self, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if item.get("type") == "function_call" and (item_id, None) in self.sent:
            item["arguments"] = self.sent[(item_id, None)]
        for index, part in enumerate(item.get("content") or []):
            if isinstance(part, dict):
                self._part(item_id, index, part)
