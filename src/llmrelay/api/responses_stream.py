"""OpenAI chat chunks → the Responses API's typed stream events.

An explicit state machine; every event carries the next ``sequence_number``::

    first chunk        → response.created, response.in_progress
    reasoning_content  → a reasoning item   (reasoning_summary_part.added / _text.delta)
    content            → a message item     (content_part.added, output_text.delta)
    tool_calls[i]      → a function_call item (function_call_arguments.delta)
                         — a new item closes the open one with its *.done events and
                           response.output_item.done
    finish_reason, usage chunk → remembered
    [DONE]             → close the open item, then response.completed
                         (response.incomplete when the model ran out of tokens)

Errors become ``{"type": "error", "code", "message", "param", "sequence_number"}``.

As in :mod:`.messages_stream`, chunks relayed from an OpenAI-compatible upstream may
hold anything: fields of an unexpected type are left out, and a chunk that still
cannot be read ends the stream with a 502 (``unexpected_event``).
"""

from __future__ import annotations

from typing import Any

from llmrelay.errors import GatewayError
from llmrelay.providers.stream_state import (
    SHAPE_ERRORS,
    json_object,
    small_index,
    unexpected_event,
)
from llmrelay.sse import encode_event, event_data

from .responses_translate import (
    call_item,
    message_item,
    reasoning_item,
    response_usage,
    skeleton,
    status_of,
)


class ResponsesEncoder:
    """One ``/v1/responses`` stream's state."""

    def __init__(
        self, request: dict[str, Any], response_id: str, created: int, provider: str = "upstream"
    ) -> None:
        self._request = request
        self._provider = provider
        self._id = response_id
        self._suffix = response_id.removeprefix("resp_")
        self._created = created
        self._seq = 0
        self._response: dict[str, Any] | None = None
        self._items: list[dict[str, Any]] = []
        #: The open item: its kind, output index, id, and accumulated text/arguments.
        self._open: dict[str, Any] | None = None
        self._tools: dict[int, int] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._finished = False

    # -- input -----------------------------------------------------------------------------
    def feed(self, event: bytes) -> list[bytes]:
        if self._finished:
            return []
        data = event_data(event)
        if data is None:
            return [event] if event.startswith(b":") else []  # keep-alive comments
        if data == b"[DONE]":
            return self._complete()
        chunk = json_object(data)
        if chunk is None:
            return []
        try:
            return self._chunk(chunk)
        except SHAPE_ERRORS as exc:
            raise unexpected_event(self._provider) from exc

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if self._response is None:
            out.extend(self._start(str(chunk.get("model") or self._request.get("model"))))
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = {}
            if delta.get("reasoning_content"):
                out.extend(self._text("reasoning", str(delta["reasoning_content"])))
            if delta.get("content"):
                out.extend(self._text("message", str(delta["content"])))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    out.extend(self._tool_call(call))
            finish = choice.get("finish_reason")
            if finish and isinstance(finish, str):
                self._finish = finish
        return out

    def error_event(self, exc: GatewayError) -> bytes:
        self._finished = True
        return self._emit(
            "error", code=exc.code or type(exc).wire_type, message=exc.message, param=exc.param
        )

    # -- states ----------------------------------------------------------------------------
    def _emit(self, kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_event(kind, obj)

    def _start(self, model: str) -> list[bytes]:
        self._response = skeleton(self._request, self._id, self._created, model)
        return [
            self._emit("response.created", response=self._response),
            self._emit("response.in_progress", response=self._response),
        ]

    def _open_item(self, out: list[bytes], kind: str, item: dict[str, Any]) -> dict[str, Any]:
        self._close(out)
        index = len(self._items)
        self._open = {"kind": kind, "index": index, "item": item, "text": ""}
        out.append(self._emit("response.output_item.added", output_index=index, item=item))
        return self._open

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        current = self._open
        if current is None or current["kind"] != kind:
            if kind == "message":
                item = {**message_item("msg_" + self._suffix, "", "in_progress"), "content": []}
                current = self._open_item(out, kind, item)
                out.append(
                    self._emit(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=current["index"],
                        content_index=0,
                        part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                    )
                )
            else:
                item = {**reasoning_item("rs_" + self._suffix, ""), "summary": []}
                current = self._open_item(out, kind, item)
                out.append(
                    self._emit(
                        "response.reasoning_summary_part.added",
                        item_id=item["id"],
                        output_index=current["index"],
                        summary_index=0,
                        part={"type": "summary_text", "text": ""},
                    )
                )
        current["text"] += text
        item_id = current["item"]["id"]
        if kind == "message":
            out.append(
                self._emit(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=current["index"],
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        else:
            out.append(
                self._emit(
                    "response.reasoning_summary_text.delta",
                    item_id=item_id,
                    output_index=current["index"],
                    summary_index=0,
                    delta=text,
                )
            )
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = small_index(call.get("index"))
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        current = self._open
        if position not in self._tools:
            item = call_item(str(call.get("id")), str(function.get("name")), "", "in_progress")
            current = self._open_item(out, "function_call", item)
            self._tools[position] = current["index"]
        arguments = function.get("arguments")
        if (
            arguments
            and isinstance(arguments, str)
            and current is not None
            and current["index"] == self._tools[position]
        ):
            current["text"] += arguments
            out.append(
                self._emit(
                    "response.function_call_arguments.delta",
                    item_id=current["item"]["id"],
                    output_index=current["index"],
                    delta=arguments,
                )
            )
        return out

    def _close(self, out: list[bytes]) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        kind, index, item, text = (
            current["kind"],
            current["index"],
            current["item"],
            current["text"],
        )
        if kind == "message":
            done = message_item(item["id"], text)
            part = done["content"][0]
            out.append(
                self._emit(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
            )
            out.append(
                self._emit(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        elif kind == "reasoning":
            done = reasoning_item(item["id"], text)
            out.append(
                self._emit(
                    "response.reasoning_summary_text.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    text=text,
                )
            )
            out.append(
                self._emit(
                    "response.reasoning_summary_part.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=done["summary"][0],
                )
            )
        else:
            done = call_item(item["call_id"], item["name"], text)
            out.append(
                self._emit(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=text,
                )
            )
        self._items.append(done)
        out.append(self._emit("response.output_item.done", output_index=index, item=done))

    def _complete(self) -> list[bytes]:
        self._finished = True
        out: list[bytes] = []
        if self._response is None:
            out.extend(self._start(str(self._request.get("model"))))
        self._close(out)
        assert self._response is not None
        final = dict(self._response)
        final["output"] = self._items
        final["status"], final["incomplete_details"] = status_of(self._finish)
        usage = response_usage(self._usage)
        if usage is not None:  # OpenAI's schema has no null usage (see ``skeleton``)
            final["usage"] = usage
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._emit(kind, response=final))
        return out
