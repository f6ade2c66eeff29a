"""``/v1/messages``: an Anthropic request as an OpenAI chat body, and the answer back.

The inverse of the Anthropic adapter's translation, built from the same mappings
(:mod:`llmrelay.providers.anthropic_convert`), so a request that goes Anthropic →
OpenAI → Anthropic comes back as it was. Anthropic-only features that no OpenAI-shaped
upstream can honour (server tools, containers, MCP servers, threads) are refused with
a 400 naming them; ``thinking`` (and ``output_config.effort``) becomes
``reasoning_effort``; structured outputs (``output_config.format``, or the beta's
top-level ``output_format``) become ``response_format``; ``top_k`` is passed on for
the hosts that take it.
"""

from __future__ import annotations

from typing import Any

from llmrelay.errors import InvalidRequest
from llmrelay.providers.anthropic_convert import (
    anthropic_usage,
    arguments_to_input_lenient,
    block_to_part,
    blocks_to_content,
    input_to_arguments,
    stop_reason,
    tool_choice_to_openai,
    tool_to_openai,
)

#: Anthropic request fields and what happens to them here.
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "output_format",
        # Prompt caching is a cost hint: OpenAI-shaped hosts cache (or not) on their own.
        "cache_control",
    }
)
#: Fields that change what Anthropic does in ways no translation can reproduce.
_ANTHROPIC_ONLY = frozenset(
    {
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "thread",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)
#: Anthropic's effort levels above OpenAI's highest.
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def validate(body: dict[str, Any]) -> None:
    """Anthropic's own checks of the essentials, with its wording.

    Other fields are checked by :func:`to_chat` only: an Anthropic upstream taking the
    body as is judges them itself (and knows fields newer than llmrelay).
    """
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    if max_tokens < 1:
        raise InvalidRequest(
            "max_tokens: Input should be greater than or equal to 1", param="max_tokens"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
                param=f"messages.{i}.role",
            )


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """Translate a validated Anthropic Messages request to an OpenAI chat body."""
    for key in body:
        if key in _ANTHROPIC_ONLY:
            raise InvalidRequest(
                f"{key}: only available when the model is served by Anthropic", param=key
            )
        if key not in _MAPPED:
            raise InvalidRequest(f"{key}: Extra inputs are not permitted", param=key)
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": blocks_to_content(system, "system")})
    for i, message in enumerate(body["messages"]):
        where = f"messages[{i}].content"
        if message["role"] == "user":
            messages.extend(_user(message.get("content"), where))
        else:
            messages.append(_assistant(message.get("content"), where))
    out: dict[str, Any] = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": body["max_tokens"],
    }
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = _strings(body["stop_sequences"], "stop_sequences")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: Input should be an object", param="metadata")
    user = metadata.get("user_id")
    if isinstance(user, str):
        out["user"] = user
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list", param="tools")
    if tools:
        out["tools"] = [tool_to_openai(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice, parallel = tool_choice_to_openai(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    if parallel is not None:
        out["parallel_tool_calls"] = parallel
    effort = _reasoning_effort(body.get("thinking"))
    config = _output_config(body.get("output_config"))
    effort = _EFFORT.get(config.get("effort") or "", effort)
    if effort is not None:
        out["reasoning_effort"] = effort
    schema = _output_schema(config.get("format"), "output_config.format")
    if "output_format" in body:
        schema = _output_schema(body["output_format"], "output_format")
    if schema is not None:
        # Not ``strict``: OpenAI's strict mode refuses schemas with optional properties,
        # which Anthropic's structured outputs allow.
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _output_config(config: Any) -> dict[str, Any]:
    """``output_config``, checked: ``effort`` and ``format`` are the fields it has."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequest(
            "output_config: Input should be a valid dictionary", param="output_config"
        )
    for key in config:
        if key not in ("effort", "format"):
            raise InvalidRequest(
                f"output_config.{key}: Extra inputs are not permitted", param=f"output_config.{key}"
            )
    effort = config.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _EFFORT):
        raise InvalidRequest(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
            param="output_config.effort",
        )
    return config


def _output_schema(fmt: Any, where: str) -> dict[str, Any] | None:
    """The JSON schema of a structured-output format (``{"type": "json_schema", ...}``)."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise InvalidRequest(f"{where}.type: Input should be 'json_schema'", param=where)
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}.schema: Field required", param=f"{where}.schema")
    return schema


def _reasoning_effort(thinking: Any) -> str | None:
    """Anthropic's thinking budget as OpenAI's coarse effort levels."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens") or 0
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise InvalidRequest(
            "thinking.budget_tokens: Input should be a valid integer",
            param="thinking.budget_tokens",
        )
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{name}: Input should be a valid list of strings", param=name)
    return list(value)


def _user(content: Any, where: str) -> list[dict[str, Any]]:
    """One user turn: its tool results as ``tool`` messages first, then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of content blocks", param=where)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        bw = f"{where}[{j}]"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            message, images = _tool_result(block, bw)
            results.append(message)
            parts.extend(images)  # OpenAI tool messages carry text only
            continue
        part = block_to_part(block, bw)
        if part is not None:
            parts.append(part)
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[Any]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"{where}.tool_use_id: Field required", param=where)
    inner = block.get("content")
    images: list[dict[str, Any]] = []
    content: str | list[dict[str, Any]]
    if inner is None or isinstance(inner, str):
        content = inner or ""
    else:
        converted = blocks_to_content(inner, f"{where}.content")
        assert isinstance(converted, list)
        content = [p for p in converted if p["type"] == "text"]
        images = [p for p in converted if p["type"] != "text"]
    return {"role": "tool", "tool_call_id": call_id, "content": content}, images


def _assistant(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of content blocks", param=where)
    calls = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
    if not calls:
        return {"role": "assistant", "content": blocks_to_content(content, where)}
    text = "".join(
        str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
    )
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {
                    "name": b.get("name"),
                    "arguments": input_to_arguments(b.get("input")),
                },
            }
            for b in calls
        ],
    }


def to_message(completion: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``message`` object.

    The completion may be an OpenAI-compatible upstream's own body, passed through: a
    field of an unexpected type is left out (a tool call that is no object, usage of any
    shape read as what is known), never a crash of the translation.
    """
    choices = completion.get("choices")
    choice = _object(choices[0] if isinstance(choices, list) and choices else None)
    message = _object(choice.get("message"))
    blocks: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    content = message.get("content")
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(
            {"type": "text", "text": p["text"]}
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
        )
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = _object(call.get("function"))
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments_to_input_lenient(function.get("arguments")),
            }
        )
    return {
        "id": message_id(str(completion.get("id") or "")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": blocks,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message_id(upstream_id: str) -> str:
    """Anthropic-looking id that still traces back to the upstream's."""
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (upstream_id.removeprefix("chatcmpl-") or "llmrelay")
