"""Pure builders for Anthropic's Messages API wire format (JSON and SSE).

Shapes and bytes copy what api.anthropic.com sends today
(https://docs.anthropic.com/en/api/messages, .../build-with-claude/streaming): compact
JSON, ``event:`` + ``data:`` lines, a ``ping`` after the first block start (with the
space in ``{"type": "ping"}``), cumulative usage in ``message_delta``, errors as
``{"type": "error", "error": {...}, "request_id": ...}``.

Requests are checked first, like Anthropic does (:mod:`.anthropic_validate`).

Replies are deterministic, like the OpenAI mock's: the last user text echoed; a tool
call when tools are offered and the text says "tool" (or ``tool_choice`` forces one,
:mod:`.tool_choice`), its input an instance of the tool's ``input_schema``
(:mod:`.json_instance`); the tool results echoed after a tool turn; structured outputs
(``output_config.format``, a ``json_schema``) answered with JSON text of that schema;
``stop_sequences`` and ``max_tokens`` (in words) cut the reply with the matching
``stop_reason``; the word "refuse" gets ``stop_reason: refusal``; ``thinking`` adds a
thinking block.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .anthropic_validate import RequestError, blocks_of, validate
from .json_instance import instance
from .openai_format import count_words, fragments, split_words
from .tool_choice import Mode, pick_tool

_ALNUM = string.ascii_letters + string.digits
_REFUSE_WORD = re.compile(r"\brefuse\b", re.IGNORECASE)
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def _id(prefix: str) -> str:
    return prefix + "01" + "".join(secrets.choice(_ALNUM) for _ in range(22))


def new_message_id() -> str:
    return _id("msg_")


def new_tool_use_id() -> str:
    return _id("toolu_")


def new_request_id() -> str:
    return _id("req_")


# -- planning the reply ------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return "".join(parts)


def prompt_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages") or []
    total = count_words(_text_of(body.get("system") or ""))
    return total + sum(count_words(_text_of(m.get("content"))) for m in messages)


@dataclass(frozen=True, slots=True)
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, Any]
    #: The text is JSON (structured outputs): streamed in fragments, not words.
    structured: bool = False


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``output_config.format``'s JSON schema (Anthropic's structured outputs), if any."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, Mapping) else None
    return None


_MODES: dict[str, Mode] = {"none": "none", "auto": "auto", "any": "required", "tool": "named"}


def _tool_to_call(
    body: Mapping[str, Any], text: str, *, after_results: bool
) -> Mapping[str, Any] | None:
    """The tool this request gets a call to, if any (the rule of :mod:`.tool_choice`)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping)]
    choice = body.get("tool_choice") or {"type": "auto"}
    called = {
        str(b.get("name"))
        for m in body.get("messages") or []
        if m.get("role") == "assistant"
        for b in blocks_of(m)
        if b.get("type") == "tool_use"
    }
    mode = _MODES.get(str(choice.get("type")), "auto")
    index = pick_tool(
        [str(t.get("name")) for t in tools],
        mode=mode,
        text=text,
        forced=choice.get("name"),
        called=called,
        after_results=after_results,
    )
    return None if index is None else tools[index]


def usage_block(
    input_tokens: int, output_tokens: int, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    usage.update(override or {})
    return usage


def plan_reply(
    body: Mapping[str, Any],
    *,
    reply: str | None = None,
    usage: Mapping[str, Any] | None = None,
    tool_use_id: str = "toolu_mock",
) -> Reply:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    after_tools = last.get("role") == "user" and any(
        b.get("type") == "tool_result" for b in blocks_of(last)
    )
    text = _text_of(last.get("content")) if last.get("role") == "user" else ""
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        content.append(
            {"type": "thinking", "thinking": f"The user wrote: {text}", "signature": "c2lnbmF0dXJl"}
        )
    tool = None if reply is not None else _tool_to_call(body, text, after_results=after_tools)
    if tool is not None:
        arguments = instance(tool.get("input_schema") or {"type": "object"}, text)
        call = {
            "type": "tool_use",
            "id": tool_use_id,
            "name": tool["name"],
            "input": arguments if isinstance(arguments, dict) else {},
        }
        content.append(call)
        out = count_words(call["name"]) + count_words(orjson.dumps(call["input"]).decode())
        return Reply(content, "tool_use", None, usage_block(prompt_tokens(body), out, usage))
    schema = _output_schema(body)
    if schema is not None and reply is None:  # structured outputs: JSON of that schema
        answer = orjson.dumps(instance(schema, text)).decode()
        content.append({"type": "text", "text": answer})
        return Reply(
            content,
            "end_turn",
            None,
            usage_block(prompt_tokens(body), count_words(answer), usage),
            structured=True,
        )
    answer = text if reply is None else reply
    stop_reason, stop_sequence = "end_turn", None
    if reply is None and _REFUSE_WORD.search(answer):
        answer, stop_reason = "", "refusal"
    for seq in body.get("stop_sequences") or []:
        at = answer.find(seq)
        if seq and at >= 0:
            answer, stop_reason, stop_sequence = answer[:at], "stop_sequence", seq
            break
    pieces = split_words(answer)
    limit = int(body.get("max_tokens") or len(pieces))
    if len(pieces) > limit:
        answer, stop_reason, stop_sequence = "".join(pieces[:limit]), "max_tokens", None
    if answer:
        content.append({"type": "text", "text": answer})
    return Reply(
        content,
        stop_reason,
        stop_sequence,
        usage_block(prompt_tokens(body), count_words(answer), usage),
    )


# -- responses -------------------------------------------------------------------------


def message(*, message_id: str, model: str, reply: Reply) -> dict[str, Any]:
    """A non-stream ``message`` object."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": reply.usage,
    }


def encode_event(obj: Mapping[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def stream_events(*, message_id: str, model: str, reply: Reply) -> list[bytes]:
    """Every event of the stream except the final ``message_stop`` (see :data:`STOP`)."""
    usage = reply.usage
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    events = [
        encode_event(
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            }
        )
    ]
    for index, block in enumerate(reply.content):
        block_events = _block_events(index, block, structured=reply.structured)
        if index == 0:
            block_events.insert(1, PING)  # Anthropic pings right after the first block start
        events.extend(block_events)
    delta_usage = {
        k: usage[k]
        for k in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
        if k in usage
    }
    events.append(
        encode_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": delta_usage,
            }
        )
    )
    return events


def _block_events(index: int, block: Mapping[str, Any], *, structured: bool) -> list[bytes]:
    kind = block["type"]
    events: list[bytes] = []

    def delta(d: dict[str, Any]) -> None:
        events.append(encode_event({"type": "content_block_delta", "index": index, "delta": d}))

    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    events.append(
        encode_event({"type": "content_block_start", "index": index, "content_block": start})
    )
    if kind == "text":
        pieces = fragments(block["text"]) if structured else split_words(block["text"])
        for piece in pieces:
            delta({"type": "text_delta", "text": piece})
    elif kind == "thinking":
        delta({"type": "thinking_delta", "thinking": block["thinking"]})
        delta({"type": "signature_delta", "signature": block["signature"]})
    else:
        delta({"type": "input_json_delta", "partial_json": ""})
        for fragment in fragments(orjson.dumps(block["input"]).decode()):
            delta({"type": "input_json_delta", "partial_json": fragment})
    events.append(encode_event({"type": "content_block_stop", "index": index}))
    return events


STOP = encode_event({"type": "message_stop"})


# -- errors ------------------------------------------------------------------------------

#: status -> (type, message) as Anthropic sends them.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(
    status: int, *, message: str | None = None, error_type: str | None = None
) -> dict[str, Any]:
    fallback = (
        ("api_error", "Internal server error")
        if status >= 500
        else ("invalid_request_error", "Invalid request.")
    )
    default_type, default_message = ERRORS.get(status, fallback)
    return {
        "type": "error",
        "error": {"type": error_type or default_type, "message": message or default_message},
        "request_id": new_request_id(),
    }


def error_event(*, message: str | None = None, error_type: str | None = None) -> bytes:
    kind = error_type or "overloaded_error"
    text = message or ("Overloaded" if kind == "overloaded_error" else "Internal server error")
    return encode_event({"type": "error", "error": {"type": kind, "message": text}})


__all__ = ["RequestError", "validate"]
