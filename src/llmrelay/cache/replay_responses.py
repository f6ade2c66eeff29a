"""A passed-through Responses answer in the other form: a ``response`` <-> its events.

OpenAI behind ``/v1/responses`` answers in its own shape (``call.passthrough``). The
answer is stored as one ``response`` object (a stream's is the one its
``response.completed`` event carries) and serves streamed calls as the typed events
OpenAI sends, numbered by ``sequence_number``: ``response.created``,
``response.in_progress``, per output item ``output_item.added``, its parts and deltas
(message text as ``output_text.delta``, function-call arguments as
``function_call_arguments.delta``, reasoning summaries as
``reasoning_summary_text.delta``; any other item whole), ``output_item.done``, then
``response.completed`` (``response.incomplete`` for an incomplete one).
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.sse import event_data

_FINAL = ("response.completed", "response.incomplete")


class _Events:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def emit(self, kind: str, **fields: Any) -> None:
        obj = {"type": kind, "sequence_number": len(self.out), **fields}
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n")


def _message(ev: _Events, index: int, item: dict[str, Any]) -> None:
    item_id = item.get("id")
    for j, part in enumerate(item.get("content") or []):
        where = {"item_id": item_id, "output_index": index, "content_index": j}
        if isinstance(part, dict) and part.get("type") == "output_text":
            text = str(part.get("text") or "")
            ev.emit("response.content_part.added", **where, part={**part, "text": ""})
            ev.emit("response.output_text.delta", **where, delta=text, logprobs=[])
            ev.emit("response.output_text.done", **where, text=text, logprobs=[])
        else:
            ev.emit("response.content_part.added", **where, part=part)
        ev.emit("response.content_part.done", **where, part=part)


def _reasoning(ev: _Events, index: int, item: dict[str, Any]) -> None:
    for k, part in enumerate(item.get("summary") or []):
        text = str(part.get("text") or "") if isinstance(part, dict) else ""
        where = {"item_id": item.get("id"), "output_index": index, "summary_index": k}
        ev.emit(
            "response.reasoning_summary_part.added",
            **where,
            part={"type": "summary_text", "text": ""},
        )
        ev.emit("response.reasoning_summary_text.delta", **where, delta=text)
        ev.emit("response.reasoning_summary_text.done", **where, text=text)
        ev.emit(
            "response.reasoning_summary_part.done",
            **where,
            part={"type": "summary_text", "text": text},
        )


def events_of_response(body: bytes) -> list[bytes] | None:
    """The stream of a stored ``response`` (``None`` if it is not a finished one)."""
    try:
        response = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(response, dict)
        or response.get("object") != "response"
        or (response.get("status") not in ("completed", "incomplete"))
    ):
        return None
    ev = _Events()
    pending = {
        **response,
        "status": "in_progress",
        "output": [],
        "usage": None,
        "incomplete_details": None,
    }
    ev.emit("response.created", response=pending)
    ev.emit("response.in_progress", response=pending)
    for index, item in enumerate(response.get("output") or []):
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        added = {**item, "status": "in_progress"}
        if kind == "message":
            added["content"] = []
        elif kind == "function_call":
            added["arguments"] = ""
        elif kind == "reasoning":
            added["summary"] = []
        ev.emit("response.output_item.added", output_index=index, item=added)
        if kind == "message":
            _message(ev, index, item)
        elif kind == "function_call":
            arguments = str(item.get("arguments") or "")
            where = {"item_id": item.get("id"), "output_index": index}
            ev.emit("response.function_call_arguments.delta", **where, delta=arguments)
            ev.emit("response.function_call_arguments.done", **where, arguments=arguments)
        elif kind == "reasoning":
            _reasoning(ev, index, item)
        ev.emit("response.output_item.done", output_index=index, item=item)
    final = "response.completed" if response["status"] == "completed" else ("response.incomplete")
    ev.emit(final, response=response)
    return ev.out


def response_of_events(events: list[bytes]) -> bytes | None:
    """The ``response`` a Responses stream ended with (``None``: it did not finish)."""
    for raw in reversed(events):
        data = event_data(raw)
        if data is None:
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if isinstance(event, dict) and event.get("type") in _FINAL:
            response = event.get("response")
            return orjson.dumps(response) if isinstance(response, dict) else None
    return None
