"""OpenAI ⇄ Anthropic building blocks, used in both directions.

The Anthropic adapter (OpenAI client → Anthropic upstream) and the ``/v1/messages``
endpoint (Anthropic client → any upstream) translate the same things the other way
round: content parts and blocks, tools, tool choice, stop reasons, usage. Each mapping
lives here once, next to its inverse, so the two directions cannot drift apart and
round trips can be tested exactly.

Wire formats follow https://docs.anthropic.com/en/api/messages and
https://platform.openai.com/docs/api-reference/chat.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from llmrelay.errors import GatewayError, InvalidRequest, UpstreamError
from llmrelay.json_limits import loads_nested
from llmrelay.providers.base import Usage, token_count, tokens

#: The only Messages API version; sent as ``anthropic-version`` on every call.
ANTHROPIC_VERSION = "2023-06-01"

#: Anthropic requires ``max_tokens``; OpenAI clients often omit it. 4096 is the smallest
#: output limit among current Claude models (Claude 3 Haiku), so it is valid for all.
DEFAULT_MAX_TOKENS = 4096

#: Name of the tool llmrelay adds to obtain JSON output (``response_format``), as
#: Anthropic documents for JSON mode: "Tools do not necessarily need to be client
#: functions — use tools anytime you want the model to return JSON output that
#: follows a provided schema". Its call comes back as message content, not a tool call.
JSON_TOOL = "llmrelay_json_output"

#: Anthropic ``stop_reason`` → OpenAI ``finish_reason``.
FINISH_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: OpenAI ``finish_reason`` → Anthropic ``stop_reason`` (the inverse, where one exists).
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,]*)?;base64,(.*)$", re.DOTALL)


def finish_reason(stop_reason: Any) -> str | None:
    """Anthropic's ``stop_reason`` as OpenAI's; one that is not a string is unknown."""
    if stop_reason is None:
        return None
    return FINISH_REASON.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: Any) -> str:
    return STOP_REASON.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


# -- content: OpenAI parts → Anthropic blocks ------------------------------------------


def image_block(url: str, where: str) -> dict[str, Any]:
    """An OpenAI ``image_url`` (data URL or http(s) URL) as an Anthropic image block."""
    match = _DATA_URL.match(url)
    if match is not None:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": match.group(1), "data": match.group(2)},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(
        f"{where}: image_url.url must be an http(s) URL or a base64 data URL", param=where
    )


def part_to_block(part: Any, where: str) -> dict[str, Any]:
    """One OpenAI content part as an Anthropic content block."""
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    kind = part.get("type")
    block: dict[str, Any]
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text must be a string", param=where)
        block = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest(f"{where}.image_url.url must be a string", param=where)
        block = image_block(url, where)
    elif kind == "file":
        block = _file_block(part.get("file"), where)
    else:
        raise InvalidRequest(
            f"{where}: content part type {kind!r} is not supported by Anthropic models", param=where
        )
    if "cache_control" in part:  # Anthropic prompt caching, passed on as given
        block["cache_control"] = part["cache_control"]
    return block


def _file_block(file: Any, where: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    match = _DATA_URL.match(data) if isinstance(data, str) else None
    if match is None:
        raise InvalidRequest(
            f"{where}: file parts need file_data as a base64 data URL "
            "(uploaded file ids cannot be sent to Anthropic)",
            param=where,
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": match.group(1), "data": match.group(2)},
    }
    if isinstance(file, dict) and isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def content_to_blocks(content: Any, where: str) -> str | list[dict[str, Any]]:
    """OpenAI message content (string or parts) as Anthropic content (string or blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return [part_to_block(p, f"{where}[{i}]") for i, p in enumerate(content)]
    raise InvalidRequest(f"{where} must be a string or an array of content parts", param=where)


# -- content: Anthropic blocks → OpenAI parts ------------------------------------------


def block_to_part(block: Any, where: str) -> dict[str, Any] | None:
    """One Anthropic content block as an OpenAI content part (``None``: nothing to send).

    ``thinking`` blocks are dropped: their signatures only mean something to Anthropic.
    """
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text", "")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text: Input should be a valid string", param=where)
        return {"type": "text", "text": text}
    if kind == "image":
        source = _source(block, where)
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url":
            url = str(source.get("url"))
        else:
            raise InvalidRequest(
                f"{where}: image source type {source.get('type')!r} is not "
                "supported for this model",
                param=where,
            )
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document":
        source = _source(block, where)
        if source.get("type") != "base64":
            raise InvalidRequest(
                f"{where}: only base64 documents can be sent to this model", param=where
            )
        file: dict[str, Any] = {
            "file_data": f"data:{source.get('media_type')};base64,{source.get('data')}"
        }
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise InvalidRequest(
        f"{where}: content block type {kind!r} is not supported for this model", param=where
    )


def _source(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Input should be an object", param=where)
    return source


def blocks_to_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Anthropic content (string or blocks) as OpenAI content (string or parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of content blocks", param=where)
    parts = [block_to_part(b, f"{where}[{i}]") for i, b in enumerate(content)]
    return [p for p in parts if p is not None]


# -- tools -----------------------------------------------------------------------------


def tool_to_anthropic(tool: Any, where: str) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic client tool."""
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequest(
            f"{where}: tool type {kind!r} is not supported by Anthropic "
            "models; only function tools are",
            param=where,
        )
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where}.function.name is required", param=where)
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def tool_to_openai(tool: Any, where: str) -> dict[str, Any]:
    """An Anthropic client tool as an OpenAI function tool."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise InvalidRequest(f"{where}.name is required", param=where)
    if tool.get("type") not in (None, "custom"):
        raise InvalidRequest(
            f"{where}: server tool {tool.get('type')!r} is only available on Anthropic models",
            param=where,
        )
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` + ``parallel_tool_calls`` as Anthropic's ``tool_choice``."""
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif (
        isinstance(choice, dict)
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest(
            "tool_choice must be 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def tool_choice_to_openai(choice: Any) -> tuple[Any, bool | None]:
    """Anthropic ``tool_choice`` as OpenAI ``(tool_choice, parallel_tool_calls)``."""
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise InvalidRequest(f"unknown tool_choice type {kind!r}", param="tool_choice")


def arguments_to_input(arguments: Any, where: str) -> dict[str, Any]:
    """A tool call's ``arguments`` JSON string as Anthropic's ``input`` object."""
    if arguments in (None, ""):
        return {}
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str | bytes):
        raise InvalidRequest(f"{where} must be a JSON object encoded as a string", param=where)
    try:
        value = loads_nested(arguments, where, param=where)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{where} must be a JSON object encoded as a string", param=where
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must encode a JSON object", param=where)
    return value


def arguments_to_input_lenient(arguments: Any) -> dict[str, Any]:
    """Like :func:`arguments_to_input` for arguments a *model* wrote (in a response).

    A model may emit arguments that are not a JSON object; Anthropic's ``input`` must be
    one, so such text is kept under ``raw_arguments`` instead of being lost or failing
    a call the upstream already answered (and billed).
    """
    try:
        return arguments_to_input(arguments, "arguments")
    except InvalidRequest:
        return {"raw_arguments": str(arguments)}


def input_to_arguments(value: Any) -> str:
    """Anthropic's tool ``input`` object as OpenAI's ``arguments`` JSON string."""
    return orjson.dumps(value if value is not None else {}).decode()


# -- usage -----------------------------------------------------------------------------


def openai_usage(usage: Any) -> dict[str, Any]:
    """Anthropic usage as OpenAI's: prompt tokens include cache reads and writes.

    Anthropic counts ``input_tokens`` *excluding* cached ones ("total input tokens is
    the sum of input_tokens, cache_creation_input_tokens and cache_read_input_tokens");
    OpenAI's ``prompt_tokens`` includes them, with ``cached_tokens`` /
    ``cache_write_tokens`` as parts of it. Counts are bounded (:func:`token_count`).
    """
    usage = usage if isinstance(usage, dict) else {}
    read = token_count(usage.get("cache_read_input_tokens"))
    written = token_count(usage.get("cache_creation_input_tokens"))
    completion = token_count(usage.get("output_tokens"))
    prompt = tokens(usage.get("input_tokens"), read, written)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": tokens(prompt, completion),
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI usage as Anthropic's (the inverse of :func:`openai_usage`), read by
    :meth:`Usage.from_openai` (an upstream's usage may be anything)."""
    u = Usage.from_openai(usage) or Usage()
    return {
        "input_tokens": max(0, u.prompt_tokens - u.cached_tokens - u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    }


# -- errors ----------------------------------------------------------------------------

#: Anthropic error type ↔ HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_type_for_status(status: int) -> str:
    """The Anthropic error type a client expects for an HTTP status."""
    for kind, code in ERROR_STATUS.items():
        if code == status:
            return kind
    if status == 503:
        return "overloaded_error"
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def upstream_error(
    provider: str, status: int | None, payload: Any, headers: dict[str, str]
) -> UpstreamError:
    """Anthropic's ``{"type": "error", "error": {type, message}}`` as an UpstreamError.

    ``status`` is ``None`` for an ``error`` event inside a 200 stream; the error type
    then says which status the failure stands for (``overloaded_error`` → 529).
    """
    err = payload.get("error") if isinstance(payload, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    kind = kind if isinstance(kind, str) else None  # a type that is no string is none
    message = err.get("message") if isinstance(err, dict) else None
    if status is None:
        status = ERROR_STATUS.get(kind or "", 500)
    if not isinstance(message, str) or not message:
        message = f"upstream {provider} returned HTTP {status}"
    passed: dict[str, str] = {
        k: headers[k] for k in ("retry-after", "retry-after-ms") if k in headers
    }
    return UpstreamError(
        message,
        status=status,
        error_type=kind if isinstance(kind, str) else None,
        headers=passed,
        provider=provider,
    )


def anthropic_error(exc: GatewayError) -> dict[str, Any]:
    """Any gateway error in Anthropic's error shape (the inverse of :func:`upstream_error`).

    An Anthropic upstream's own error type is kept; every other error gets the type
    Anthropic uses for its status, so the ``anthropic`` SDK raises the matching class.
    """
    kind = exc.wire_type
    if not isinstance(exc, UpstreamError) or kind not in ERROR_STATUS:
        kind = error_type_for_status(exc.status)
    return {"type": "error", "error": {"type": kind, "message": exc.message}}
