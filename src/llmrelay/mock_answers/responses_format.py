"""Pure builders for OpenAI's Responses API (``POST /v1/responses``), JSON and typed SSE.

Shapes copy what api.openai.com sends today
(https://platform.openai.com/docs/api-reference/responses): a ``response`` object
echoing the request's settings, ``message`` / ``function_call`` output items, and a
stream of ``event: <type>`` + ``data:`` events numbered by ``sequence_number``, from
``response.created`` to ``response.completed`` (no ``[DONE]``).

The reply reuses the chat mock's plan on the equivalent chat request: the last user text
echoed; a tool call as ``tool_choice`` and the text say, its arguments an instance of the
tool's ``parameters``; after a ``function_call_output`` that output echoed (unless a call
is forced); JSON of the ``text.format`` schema when one is asked for.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from . import openai_format as oa


def _hex_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def new_response_id() -> str:
    return _hex_id("resp_")


def new_item_id(prefix: str) -> str:
    """``msg_...`` for messages, ``fc_...`` for function calls."""
    return _hex_id(prefix)


def request_error(body: object) -> tuple[str, str | None] | None:
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object.", None
    if not isinstance(body.get("model"), str):
        return "Missing required parameter: 'model'.", "model"
    value = body.get("input")
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        return "Missing required parameter: 'input'.", "input"
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", ""))
        for p in content or []
        if isinstance(p, Mapping) and p.get("type") in ("input_text", "output_text")
    )


def _messages(items: list[Any]) -> list[dict[str, Any]]:
    """The input items as the chat messages the chat mock plans from: messages, and
    function calls / outputs as assistant ``tool_calls`` / ``tool`` messages."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif item.get("type") == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else _text(output),
                }
            )
        elif "role" in item:
            messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
    return messages


def _tool_choice(choice: Any) -> Any:
    """A Responses ``tool_choice`` in chat's spelling (``{"type": "function", "name"}``
    -> ``{"type": "function", "function": {"name"}}``)."""
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        return {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": choice.get("mode"),
                "tools": [
                    {"type": "function", "function": {"name": t.get("name")}}
                    for t in choice.get("tools") or []
                    if isinstance(t, Mapping)
                ],
            },
        }
    return choice


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """``text.format`` in chat's ``response_format`` spelling."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": fmt.get("name"), "schema": fmt.get("schema")},
        }
    return dict(fmt)


def plan(
    body: Mapping[str, Any], *, reply: str | None, usage: Mapping[str, Any] | None, call_id: str
) -> oa.ChatReply:
    """The chat mock's reply for the equivalent chat request (tools with their
    parameters, ``tool_choice``, ``text.format`` as ``response_format``)."""
    value = body.get("input")
    items = [{"role": "user", "content": value}] if isinstance(value, str) else list(value or [])
    tools = [
        {"type": "function", "function": {"name": t.get("name"), "parameters": t.get("parameters")}}
        for t in body.get("tools") or []
        if isinstance(t, Mapping) and t.get("type") == "function"
    ]
    chat: dict[str, Any] = {
        "messages": _messages(items) or [{"role": "user", "content": ""}],
        "tools": tools,
        "tool_choice": _tool_choice(body.get("tool_choice")),
    }
    fmt = _response_format(body)
    if fmt is not None:
        chat["response_format"] = fmt
    return oa.plan_chat_reply(chat, reply=reply, usage=usage, tool_call_id=call_id)


def _usage(chat_usage: Mapping[str, Any]) -> dict[str, Any]:
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    details = chat_usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(details.get("cached_tokens") or 0),
            "cache_write_tokens": int(details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(chat_usage.get("total_tokens") or prompt + completion),
    }


def _items(reply: oa.ChatReply, item_id: str, status: str) -> list[dict[str, Any]]:
    call = reply.tool_call
    if call is not None:
        return [
            {
                "id": item_id,
                "type": "function_call",
                "status": status,
                "arguments": call.arguments if status == "completed" else "",
                "call_id": call.id,
                "name": call.name,
            }
        ]
    text = reply.content or "" if status == "completed" else None
    content = (
        []
        if text is None
        else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    )
    return [
        {
            "id": item_id,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }
    ]


def response(
    body: Mapping[str, Any],
    *,
    response_id: str,
    created: int,
    reply: oa.ChatReply | None,
    item_id: str,
) -> dict[str, Any]:
    """The ``response`` object; ``reply=None`` gives the in-progress one of a stream."""
    done = reply is not None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": body.get("model"),
        "output": _items(reply, item_id, "completed") if reply is not None else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default" if done else "auto",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": _echoed_format(body), "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        # OpenAI lists function tools normalised: strict (its default true), parameters.
        "tools": [
            {"strict": True, "parameters": None, **t} if t.get("type") == "function" else t
            for t in body.get("tools") or []
        ],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(reply.usage) if reply is not None else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _echoed_format(body: Mapping[str, Any]) -> dict[str, Any]:
    """``text.format`` as OpenAI echoes it: the request's, ``strict`` defaulted for schemas."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(fmt, Mapping):
        return {"type": "text"}
    if fmt.get("type") == "json_schema":
        return {"description": None, "strict": False, **fmt}
    return dict(fmt)


def encode_event(obj: Mapping[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def stream_events(
    body: Mapping[str, Any], *, response_id: str, created: int, reply: oa.ChatReply, item_id: str
) -> list[bytes]:
    """The typed events of a streamed response, ``response.completed`` last."""
    seq = iter(range(1_000_000))
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": next(seq), **fields})

    pending = response(body, response_id=response_id, created=created, reply=None, item_id=item_id)
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    added = _items(reply, item_id, "in_progress")[0]
    done = _items(reply, item_id, "completed")[0]
    emit("response.output_item.added", output_index=0, item=added)
    if reply.tool_call is not None:
        for fragment in oa.fragments(reply.tool_call.arguments):
            emit(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=0,
                delta=fragment,
            )
        emit(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=0,
            name=reply.tool_call.name,
            arguments=reply.tool_call.arguments,
        )
    else:
        text = reply.content or ""
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        emit(
            "response.content_part.added",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part=empty,
        )
        for piece in oa.content_pieces(reply):
            emit(
                "response.output_text.delta",
                item_id=item_id,
                output_index=0,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        emit(
            "response.output_text.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        emit(
            "response.content_part.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part={**empty, "text": text},
        )
    emit("response.output_item.done", output_index=0, item=done)
    emit(
        "response.completed",
        response=response(
            body, response_id=response_id, created=created, reply=reply, item_id=item_id
        ),
    )
    return [encode_event(e) for e in events]


def error_event(*, message: str | None, code: str | None, sequence_number: int) -> bytes:
    return encode_event(
        {
            "type": "error",
            "code": code or "server_error",
            "message": message
            or "The server had an error while processing your request. Sorry about that!",
            "param": None,
            "sequence_number": sequence_number,
        }
    )
