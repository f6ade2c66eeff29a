"""An OpenAI chat request as an Anthropic Messages request.

What maps, per https://docs.anthropic.com/en/api/messages:

* ``system`` / ``developer`` messages → the top-level ``system`` (Anthropic has no
  system turns); ``tool`` messages → ``tool_result`` blocks in one user turn;
  assistant ``tool_calls`` → ``tool_use`` blocks with ``input`` as an object.
* ``max_tokens`` / ``max_completion_tokens`` → ``max_tokens`` (required upstream;
  :data:`DEFAULT_MAX_TOKENS` when absent), ``stop`` → ``stop_sequences``,
  ``user`` → ``metadata.user_id``, ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``.
* ``response_format`` json_object / json_schema → a forced tool whose input is the
  JSON (Anthropic's documented JSON mode); when the request also has its own tools the
  model must stay free to call them, so the schema goes into the system prompt instead.
* Parameters Anthropic cannot honour (``seed``, penalties, ``logprobs``, ``n`` > 1 ...)
  raise a 400 naming them, or are dropped when the provider has ``drop_params``; their
  neutral values (``n: 1``, a penalty of 0, ``logprobs: false``) are accepted silently.
* Any other field is passed on unchanged, so Anthropic-only options (``top_k``,
  ``thinking``, ``service_tier``) work from OpenAI clients and true typos get
  Anthropic's own 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.errors import InvalidRequest, UnsupportedParameter
from llmrelay.providers.anthropic_convert import (
    DEFAULT_MAX_TOKENS,
    JSON_TOOL,
    arguments_to_input,
    content_to_blocks,
    part_to_block,
    tool_choice_to_anthropic,
    tool_to_anthropic,
)
from llmrelay.providers.base import ProviderSpec
from llmrelay.providers.chat_input import (
    max_tokens_of,
    number_of,
    response_format_of,
    stop_list,
)

#: OpenAI parameters Anthropic has no equivalent for, with their neutral value
#: (sending the neutral value is harmless, so it is accepted and not forwarded).
_UNSUPPORTED: dict[str, object] = {
    "seed": None,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "logit_bias": None,
    "logprobs": False,
    "top_logprobs": None,
    "n": 1,
    "audio": None,
    "prediction": None,
    "web_search_options": None,
    "reasoning_effort": None,
    "functions": None,
    "function_call": None,
    "verbosity": None,
}

#: Consumed by the translation itself (or meaningless upstream): never forwarded as is.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "store",
        "metadata",
        "modalities",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)


def to_anthropic(
    spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
) -> dict[str, Any]:
    """Translate a validated OpenAI chat body; raises :class:`InvalidRequest` (400)."""
    _check_unsupported(spec, body)
    system, messages = _messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": model}
    max_tokens = max_tokens_of(body)  # checked here: a wrong type need not go upstream
    out["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    listed = body.get("tools") or []
    if not isinstance(listed, list):
        raise InvalidRequest("tools must be an array", param="tools")
    tools = [tool_to_anthropic(t, f"tools[{i}]") for i, t in enumerate(listed)]
    choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if any(t["name"] == JSON_TOOL for t in tools):
        raise InvalidRequest(f"tool name {JSON_TOOL} is reserved by llmrelay", param="tools")
    fmt = body.get("response_format")
    json_schema = _json_schema(fmt)
    if json_schema is not None and isinstance(fmt, dict):
        if tools or not _is_object_schema(json_schema):
            system.append({"type": "text", "text": _json_instruction(fmt, json_schema)})
        else:
            tools = [
                {
                    "name": JSON_TOOL,
                    "description": "Respond with the answer as this tool's input.",
                    "input_schema": json_schema,
                }
            ]
            choice = {"type": "tool", "name": JSON_TOOL}
    if system:
        plain = len(system) == 1 and set(system[0]) == {"type", "text"}
        out["system"] = system[0]["text"] if plain else system
    out["messages"] = messages
    for name in ("temperature", "top_p"):
        value = number_of(body, name)
        if value is not None:
            out[name] = value
    stop = stop_list(body)
    if stop is not None:
        out["stop_sequences"] = stop
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str):
        out["metadata"] = {"user_id": user}
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    if stream:
        out["stream"] = True
    for key, value in body.items():
        if key not in _HANDLED and key not in _UNSUPPORTED:
            out[key] = value  # Anthropic-native extras (top_k, thinking, ...)
    return out


def _check_unsupported(spec: ProviderSpec, body: dict[str, Any]) -> None:
    if spec.drop_params:
        return
    for name, neutral in _UNSUPPORTED.items():
        value = body.get(name)
        if value is not None and value != neutral:
            raise UnsupportedParameter(name, spec.name)
    store = body.get("store")
    if store:
        raise UnsupportedParameter("store", spec.name, "Anthropic does not store completions")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise UnsupportedParameter("modalities", spec.name, "Anthropic models answer in text")


def _system_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        blocks = [part_to_block(p, f"{where}[{i}]") for i, p in enumerate(content)]
        if any(b["type"] != "text" for b in blocks):
            raise InvalidRequest(f"{where}: system messages may only hold text", param=where)
        return blocks
    raise InvalidRequest(f"{where} must be a string or an array of text parts", param=where)


def _messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split OpenAI messages into Anthropic ``system`` blocks and ``messages``."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    #: The user turn of tool results being filled: consecutive tool messages share it.
    #: Kept, not found again by scanning the last turn's blocks, which made a body of
    #: many tool messages quadratic (80,000 in 4 MB held the event loop for minutes).
    results: dict[str, Any] | None = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_system_blocks(content, f"{where}.content"))
        elif role == "user":
            out.append({"role": "user", "content": content_to_blocks(content, f"{where}.content")})
        elif role == "assistant":
            out.append(_assistant(message, where))
        elif role == "tool":
            result = _tool_result(message, where)
            if results is not None and out[-1] is results:
                results["content"].append(result)  # parallel results share one user turn
            else:
                results = {"role": "user", "content": [result]}
                out.append(results)
        else:
            raise InvalidRequest(
                f"{where}.role {role!r} is not supported by Anthropic models", param=f"{where}.role"
            )
    return system, out


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if not calls:
        if content is None:
            raise InvalidRequest(f"{where} needs content or tool_calls", param=where)
        return {"role": "assistant", "content": content_to_blocks(content, f"{where}.content")}
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif content is not None:
        converted = content_to_blocks(content, f"{where}.content")
        blocks.extend(b for b in converted if isinstance(b, dict) and b.get("text") != "")
    for j, call in enumerate(calls):
        cw = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{cw}.function.name is required", param=cw)
        if not isinstance(call.get("id"), str):
            raise InvalidRequest(f"{cw}.id is required", param=cw)
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": arguments_to_input(function.get("arguments"), f"{cw}.function.arguments"),
            }
        )
    return {"role": "assistant", "content": blocks}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequest(
            f"{where}.tool_call_id is required for tool messages", param=f"{where}.tool_call_id"
        )
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if content is None:
        return result
    result["content"] = content_to_blocks(content, f"{where}.content")
    return result


def _json_schema(fmt: Any) -> dict[str, Any] | None:
    """The schema JSON output must follow, ``{}``-free: ``None`` when not JSON mode."""
    parsed = response_format_of({"response_format": fmt})
    if parsed is None or parsed[0] == "text":
        return None
    schema = parsed[1]  # None for json_object: any object will do
    return {"type": "object"} if schema is None else schema


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object"


def _json_instruction(fmt: dict[str, Any], schema: dict[str, Any]) -> str:
    if fmt.get("type") == "json_object":
        return "Respond only with a single valid JSON object, without any other text."
    return (
        "Respond only with a single valid JSON value that follows this JSON schema, "
        "without any other text: " + orjson.dumps(schema).decode()
    )
