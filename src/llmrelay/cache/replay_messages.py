"""A passed-through Anthropic answer in the other form: a ``message`` <-> its SSE events.

An answer an Anthropic provider gave behind ``/v1/messages`` is the provider's own bytes
(``call.passthrough``). It is stored as one ``message`` (a stream is assembled first) and
serves streamed calls as the events Anthropic sends: ``message_start``, per block
``content_block_start`` / deltas / ``content_block_stop`` (text as ``text_delta``,
thinking as ``thinking_delta`` then ``signature_delta``, tool use as ``input_json_delta``;
any other block, such as a server tool's result or a redacted thinking block, whole in
its start event, as Anthropic sends them), ``message_delta`` with the stop reason and
usage, ``message_stop``. Citations ride on their text block's start.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.sse import encode_event, event_data


def events_of_message(body: bytes) -> list[bytes] | None:
    """The stream of a stored ``message`` (``None`` if it is not one)."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    usage = dict(message.get("usage") or {})
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [encode_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or []):
        events.extend(_block(index, block))
    events.append(
        encode_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message.get("stop_reason"),
                    "stop_sequence": message.get("stop_sequence"),
                },
                "usage": usage,
            },
        )
    )
    events.append(encode_event("message_stop", {"type": "message_stop"}))
    return events


def _block(index: int, block: Any) -> list[bytes]:
    def event(name: str, **fields: Any) -> bytes:
        return encode_event(name, {"type": name, "index": index, **fields})

    def delta(**fields: Any) -> bytes:
        return event("content_block_delta", delta=fields)

    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        out = [
            event("content_block_start", content_block={**block, "text": ""}),
            delta(type="text_delta", text=block.get("text") or ""),
        ]
    elif kind == "thinking":
        out = [
            event(
                "content_block_start",
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            ),
            delta(type="thinking_delta", thinking=block.get("thinking") or ""),
        ]
        if block.get("signature"):
            out.append(delta(type="signature_delta", signature=block["signature"]))
    elif kind == "tool_use":
        out = [
            event("content_block_start", content_block={**block, "input": {}}),
            delta(
                type="input_json_delta",
                partial_json=orjson.dumps(block.get("input") or {}).decode(),
            ),
        ]
    else:
        out = [event("content_block_start", content_block=block)]
    out.append(event("content_block_stop"))
    return out


def message_of_events(events: list[bytes]) -> bytes | None:
    """The ``message`` an Anthropic stream adds up to (``None``: not a whole one)."""
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    stopped = False
    for raw in events:
        data = event_data(raw)
        if data is None:
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start":
            message = dict(event.get("message") or {})
        elif kind == "content_block_start":
            blocks[int(event.get("index") or 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            index = int(event.get("index") or 0)
            block, delta = blocks.get(index), event.get("delta") or {}
            if block is None:
                return None
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text") or "")
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + str(delta.get("thinking") or "")
            elif dtype == "signature_delta":
                block["signature"] = str(delta.get("signature") or "")
            elif dtype == "input_json_delta":
                partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
            elif dtype == "citations_delta":
                block.setdefault("citations", []).append(delta.get("citation"))
        elif kind == "message_delta" and message is not None:
            message.update({k: v for k, v in (event.get("delta") or {}).items()})
            message["usage"] = {**(message.get("usage") or {}), **(event.get("usage") or {})}
        elif kind == "message_stop":
            stopped = True
    if message is None or not stopped:
        return None
    for index, parts in partial.items():
        try:
            blocks[index]["input"] = orjson.loads("".join(parts)) if any(parts) else {}
        except orjson.JSONDecodeError:
            return None
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return orjson.dumps(message)
