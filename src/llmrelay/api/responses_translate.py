"""``/v1/responses``: a Responses API request as a chat body, and the answer back.

For providers without the Responses API, a request becomes a chat completion
(https://platform.openai.com/docs/api-reference/responses/create):

* ``instructions`` → a leading system message; ``input`` (a string or items) →
  messages: ``message`` items by role, ``function_call`` items → an assistant turn's
  ``tool_calls``, ``function_call_output`` → ``tool`` messages; ``reasoning`` items are
  the model's own and are dropped.
* ``max_output_tokens`` → ``max_tokens``; ``text.format`` → ``response_format``;
  function ``tools`` (flat) → chat tools (nested); ``reasoning.effort`` →
  ``reasoning_effort``; ``user`` / ``safety_identifier`` → ``user``.
* What needs server-side state or OpenAI's hosted tools (``previous_response_id``,
  ``conversation``, ``prompt``, ``background``, web/file search ...) is refused with a
  400 naming it: llmrelay stores no responses.

The answer becomes a ``response`` object: ``message`` / ``function_call`` / ``reasoning``
output items, ``status`` ``incomplete`` when the model ran out of tokens, and usage in
the Responses naming (``input_tokens`` ...).
"""

from __future__ import annotations

import secrets
from typing import Any

from llmrelay.errors import InvalidRequest, UnsupportedParameter
from llmrelay.providers.base import Usage

_MAPPED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "max_output_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "user",
        "safety_identifier",
        "top_logprobs",
    }
)
#: Fields that do not change what the model generates here.
_IGNORED = frozenset(
    {
        "store",
        "include",
        "truncation",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "stream_options",
    }
)
#: Fields that need OpenAI's server-side state or hosted machinery.
_STATEFUL = frozenset(
    {
        "previous_response_id",
        "conversation",
        "prompt",
        "background",
        "max_tool_calls",
    }
)


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def validate(body: dict[str, Any]) -> None:
    """What every target needs; ``input`` may be absent for OpenAI (stored prompts)."""
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest("input must be a string or an array of input items", param="input")
    # Read on every path (also to echo the request's settings in stream events).
    for name in ("text", "reasoning", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise InvalidRequest(f"{name} must be an object", param=name)
    for name in ("tools", "include"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise InvalidRequest(f"{name} must be an array", param=name)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("instructions must be a string", param="instructions")


def to_chat(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """Translate a Responses request to an OpenAI chat body (for a non-OpenAI target)."""
    for key, value in body.items():
        if key in _STATEFUL and value not in (None, False):
            raise UnsupportedParameter(
                key,
                provider,
                "llmrelay keeps no response state; send the whole conversation in input",
            )
        # A field sent as null is a field not set (OpenAI's SDKs send some that way).
        if value is not None and key not in _MAPPED | _IGNORED | _STATEFUL:
            raise InvalidRequest(f"Unrecognized request argument supplied: {key}", param=key)
    if body.get("input") is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(_messages(body["input"]))
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("top_logprobs"):
        out["logprobs"] = True
        out["top_logprobs"] = body["top_logprobs"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str):
        out["user"] = user
    tools = body.get("tools") or []
    if tools:
        out["tools"] = [_tool(t, f"tools[{i}]", provider) for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        out["tool_choice"] = _tool_choice(choice)
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None:
        out["response_format"] = _response_format(fmt)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# -- input items → messages ------------------------------------------------------------


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(
                f"{where}: only image_url images can be translated "
                "(file_id needs OpenAI's file store)",
                param=where,
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise InvalidRequest(
                f"{where}: only inline file_data files can be translated", param=where
            )
        file = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    raise InvalidRequest(f"{where}: content type {kind!r} is not supported", param=where)


def _content(content: Any, role: str, where: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array", param=where)
    parts = [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]
    if role != "user" and all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # system / assistant text as plain text
    return parts


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(
                    f"{where}.role {role!r} is not supported", param=f"{where}.role"
                )
            out.append(
                {"role": role, "content": _content(item.get("content"), role, f"{where}.content")}
            )
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":  # one turn: text + calls
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _content(output, "tool", where)
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})
        elif kind == "reasoning":
            continue  # the model's own notes: meaningless to another model
        else:
            raise InvalidRequest(
                f"{where}: input item type {kind!r} is not supported "
                "(llmrelay keeps no server-side items)",
                param=where,
            )
    return out


# -- tools and formats -------------------------------------------------------------------


def _tool(tool: Any, where: str, provider: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise UnsupportedParameter(
            f"{where}.type", provider, f"hosted tool {kind!r} exists only on OpenAI"
        )
    function: dict[str, Any] = {"name": tool.get("name")}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequest(
        "tool_choice must be auto, none, required or a function", param="tool_choice"
    )


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        "text.format.type must be text, json_object or json_schema", param="text.format"
    )


# -- the answer: chat completion → response object ---------------------------------------


def response_usage(usage: Any) -> dict[str, Any] | None:
    """Chat usage as the Responses API's, read (and bounded) by :meth:`Usage.from_openai`:
    an upstream's usage may be of any shape."""
    u = Usage.from_openai(usage)
    if u is None:
        return None
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def status_of(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    """``(status, incomplete_details)`` for a chat finish reason."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def skeleton(request: dict[str, Any], response_id: str, created: int, model: str) -> dict[str, Any]:
    """The ``response`` object before any output: the request's settings echoed."""
    fmt = (request.get("text") or {}).get("format") or {"type": "text"}
    out: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": (request.get("reasoning") or {}).get("effort"), "summary": None},
        "store": False,
        "temperature": request.get("temperature", 1.0),
        "text": {"format": fmt},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": [echoed_tool(t) for t in request.get("tools") or []],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": request.get("metadata") or {},
    }
    # ``usage`` (until known) and the deprecated ``user`` are typed as an object and a
    # string in OpenAI's schema, not nullable: omitted rather than null.
    if isinstance(request.get("user"), str):
        out["user"] = request["user"]
    return out


def echoed_tool(tool: Any) -> Any:
    """A request's tool as a ``Response`` lists it: a function tool always carries
    ``strict`` and ``parameters`` there (``null`` when the request left them out)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"parameters": None, "strict": None, **tool}
    return tool


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "fc_" + call_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def to_response(
    request: dict[str, Any], completion: dict[str, Any], response_id: str, created: int
) -> dict[str, Any]:
    """A ``chat.completion`` as a finished ``response`` object (fields of an unexpected
    type left out, as :func:`~llmrelay.api.messages_translate.to_message` does)."""
    out = skeleton(request, response_id, created, str(completion.get("model") or ""))
    choices = completion.get("choices")
    choice = _object(choices[0] if isinstance(choices, list) and choices else None)
    message = _object(choice.get("message"))
    suffix = response_id.removeprefix("resp_")
    items: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        items.append(reasoning_item("rs_" + suffix, str(message["reasoning_content"])))
    if message.get("content"):
        items.append(message_item("msg_" + suffix, str(message["content"])))
    elif message.get("refusal"):
        items.append(
            {
                "id": "msg_" + suffix,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": str(message["refusal"])}],
            }
        )
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = _object(call.get("function"))
        items.append(
            call_item(
                str(call.get("id")), str(function.get("name")), str(function.get("arguments") or "")
            )
        )
    out["output"] = items
    out["status"], out["incomplete_details"] = status_of(choice.get("finish_reason"))
    usage = response_usage(completion.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out
