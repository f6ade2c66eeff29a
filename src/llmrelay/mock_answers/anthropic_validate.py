"""Request validation for the mock's Anthropic Messages API, worded like Anthropic's.

The checks a translating gateway could fail: ``max_tokens`` required, unknown top-level
fields refused ("Extra inputs are not permitted"), non-empty text blocks, images as
base64 of an allowed type or an http(s) URL, and every ``tool_use`` answered by a
``tool_result`` in the very next user turn (and no stray results).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
KNOWN_FIELDS = frozenset(
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
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
    }
)


class RequestError(Exception):
    """An ``invalid_request_error`` as Anthropic words it."""


def validate(body: Any) -> None:
    """Raise :class:`RequestError` with Anthropic's message for a malformed request."""
    if not isinstance(body, dict):
        raise RequestError("The request body is not valid JSON.")
    for key in body:
        if key not in KNOWN_FIELDS:
            raise RequestError(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise RequestError("model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise RequestError("max_tokens: Field required")
    if max_tokens < 1:
        raise RequestError("max_tokens: Input should be greater than or equal to 1")
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 1
    ):
        raise RequestError("temperature: range: 0..1")
    _validate_system(body.get("system"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: at least one message is required")
    for i, message in enumerate(messages):
        _validate_message(message, i, last=i == len(messages) - 1)
    _validate_tool_pairs(messages)
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise RequestError("tools: Input should be a valid list")
    names = set()
    for i, tool in enumerate(tools):
        schema = tool.get("input_schema") if isinstance(tool, dict) else None
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise RequestError(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if not isinstance(tool.get("name"), str):
            raise RequestError(f"tools.{i}.custom.name: Field required")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in (
            "auto",
            "any",
            "tool",
            "none",
        ):
            raise RequestError("tool_choice: Input tag does not match any of the expected tags")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise RequestError(
                f"tool_choice.tool.name: tool {choice.get('name')!r} not found in tools"
            )
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise RequestError("stop_sequences: Input should be a valid list of strings")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise RequestError("system: Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
            raise RequestError(f"system.{i}: system blocks must be non-empty text blocks")


def _validate_message(message: Any, i: int, *, last: bool) -> None:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise RequestError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    if not content and not (last and message["role"] == "assistant"):
        raise RequestError(
            f"messages.{i}: all messages must have non-empty content except "
            "for the optional final assistant message"
        )
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise RequestError(f"messages.{i}.content: Input should be a valid string or list")
    for j, block in enumerate(content):
        _validate_block(block, message["role"], f"messages.{i}.content.{j}")


def _validate_block(block: Any, role: str, where: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise RequestError(f"{where}: text content blocks must be non-empty")
    elif kind == "image":
        _validate_image(block.get("source"), where)
    elif kind == "document":
        source = block.get("source")
        if not isinstance(source, dict) or (source.get("type"), source.get("media_type")) != (
            "base64",
            "application/pdf",
        ):
            raise RequestError(f"{where}.source: only base64 PDF documents are supported")
    elif kind == "tool_use":
        if role != "assistant":
            raise RequestError(f"{where}: tool_use blocks are only allowed in assistant turns")
        if not isinstance(block.get("id"), str) or not isinstance(block.get("input"), dict):
            raise RequestError(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            raise RequestError(f"{where}: tool_result blocks are only allowed in user turns")
        if not isinstance(block.get("tool_use_id"), str):
            raise RequestError(f"{where}.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for k, part in enumerate(inner):
                _validate_block(part, role, f"{where}.content.{k}")
    elif kind in ("thinking", "redacted_thinking"):
        if role != "assistant":
            raise RequestError(f"{where}: thinking blocks are only allowed in assistant turns")
    else:
        raise RequestError(
            f"{where}.type: Input tag {kind!r} found using 'type' does not "
            "match any of the expected tags"
        )


def _validate_image(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise RequestError(f"{where}.source: Field required")
    if source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise RequestError(f"{where}.source.url: Input should be a valid URL")
        return
    if source.get("type") != "base64":
        raise RequestError(f"{where}.source.type: Input should be 'base64' or 'url'")
    if source.get("media_type") not in IMAGE_TYPES:
        raise RequestError(
            f"{where}.source.media_type: Input should be 'image/jpeg', "
            "'image/png', 'image/gif' or 'image/webp'"
        )
    try:
        base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"{where}.source.data: invalid base64 data") from exc


def _validate_tool_pairs(messages: list[dict[str, Any]]) -> None:
    for i, message in enumerate(messages):
        ids = [b["id"] for b in blocks_of(message) if b.get("type") == "tool_use"]
        following = messages[i + 1] if i + 1 < len(messages) else None
        results = {
            b.get("tool_use_id")
            for b in blocks_of(following or {})
            if b.get("type") == "tool_result"
        }
        missing = [x for x in ids if x not in results]
        if missing and following is not None:
            raise RequestError(
                f"messages.{i + 1}: `tool_use` ids were found without "
                "`tool_result` blocks immediately after: " + ", ".join(missing)
            )
        if message.get("role") == "user":
            previous = messages[i - 1] if i else {}
            known = {b.get("id") for b in blocks_of(previous) if b.get("type") == "tool_use"}
            for j, block in enumerate(blocks_of(message)):
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in known:
                    raise RequestError(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous "
                        "message."
                    )


def blocks_of(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
