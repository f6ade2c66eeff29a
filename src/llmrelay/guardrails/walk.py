"""The texts of a request or an answer, in every client shape, rewritten in place.

One walk serves every endpoint: OpenAI chat (messages, content parts, tool call
arguments, tool results), Anthropic Messages (system, text blocks, ``tool_use``
input, ``tool_result`` content), Responses (``input`` / ``instructions``, output
items, function call arguments and outputs), embeddings ``input``, and the answers in
the internal form or passed through. A string is a text when its key says so
(:data:`TEXT_KEYS`); ids, roles, types, image data and tool definitions are left alone,
so a base64 image or a ``call_…`` id is never mistaken for PII.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT_KEYS = frozenset(
    {
        "content",
        "text",
        "arguments",
        "output",
        "system",
        "instructions",
        "input",
        "partial_json",
        "refusal",
    }
)
#: Top-level request fields that hold no conversation text (tool definitions, formats).
_SKIP = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "text",
        "metadata",
        "model",
        "stream_options",
        "reasoning",
        "thinking",
        "functions",
    }
)

Rewrite = Callable[[str], str]


def rewrite_body(body: dict[str, Any], fn: Rewrite) -> None:
    """Rewrite every text of a request or answer body in place."""
    for key, value in body.items():
        if key in _SKIP:
            continue
        if isinstance(value, str):
            if key in TEXT_KEYS:
                body[key] = fn(value)
        elif isinstance(value, dict | list):
            _walk(value, fn, key in TEXT_KEYS)


def _walk(node: dict[str, Any] | list[Any], fn: Rewrite, texty: bool) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, str):
                if texty:
                    node[i] = fn(item)
            elif isinstance(item, dict | list):
                _walk(item, fn, False)
        return
    tool_use = node.get("type") in ("tool_use", "server_tool_use")
    for key, value in node.items():
        if isinstance(value, str):
            if key in TEXT_KEYS:
                node[key] = fn(value)
        elif isinstance(value, dict | list):
            if tool_use and key == "input":
                _every(value, fn)  # a tool's arguments as an object: every string
            else:
                _walk(value, fn, key in TEXT_KEYS)


def _every(node: dict[str, Any] | list[Any], fn: Rewrite) -> None:
    keys = range(len(node)) if isinstance(node, list) else list(node)
    for key in keys:
        value = node[key]  # type: ignore[index]
        if isinstance(value, str):
            node[key] = fn(value)  # type: ignore[index]
        elif isinstance(value, dict | list):
            _every(value, fn)
