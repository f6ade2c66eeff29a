"""What the mock assistant "says" to an OpenAI chat request, before any wire format.

:func:`plan_chat_reply` reads the request (the last user text, tools and
``tool_choice``, ``response_format``, a conversation ending in tool results) and
decides a :class:`ChatReply`: text, a tool call or JSON content, with its finish reason
and usage. :mod:`.openai_format` renders it as a ``chat.completion`` or a chunk stream;
the other providers' formats render the same reply in their shapes. Token counts are
words (:func:`count_words`), a deterministic stand-in for a tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .json_instance import instance
from .tool_choice import Mode, pick_tool

# -- reading requests --------------------------------------------------------------


def content_text(content: object) -> str:
    """Text of a message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """Text of the last ``user`` message; the default reply echoes it verbatim."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def count_words(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(messages: Sequence[Any]) -> int:
    """Word count over the text of every message."""
    return sum(
        count_words(content_text(m.get("content"))) for m in messages if isinstance(m, Mapping)
    )


# -- the reply ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What the assistant "says"; rendered as JSON or as a chunk stream.

    ``structured`` marks JSON content (a ``response_format`` answer): streams carry it in
    short fragments, as a model emits JSON, rather than word by word.
    """

    content: str | None
    tool_call: ToolCall | None
    finish_reason: str
    usage: dict[str, Any]
    structured: bool = False


def usage_block(
    prompt: int, completion: int, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAI's usage object; ``override`` keys replace the computed ones.

    ``total_tokens`` follows the (possibly overridden) prompt/completion counts
    unless it is overridden itself, so ``{"prompt_tokens": 1000}`` stays
    self-consistent for cost tests.
    """
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if override:
        usage.update(override)
        if "total_tokens" not in override:
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(p, int) and isinstance(c, int):
                usage["total_tokens"] = p + c
    return usage


def _tool_choice(choice: object) -> tuple[Mode, str | None, set[str] | None]:
    """``(mode, forced name, allowed names)`` of a chat ``tool_choice``."""
    if choice in ("none", "auto", "required"):
        return choice, None, None
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        return "named", name if isinstance(name, str) else None, None
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        spec = spec if isinstance(spec, Mapping) else {}
        allowed = {
            str((t.get("function") or {}).get("name"))
            for t in spec.get("tools") or []
            if isinstance(t, Mapping)
        }
        return ("required" if spec.get("mode") == "required" else "auto"), None, allowed
    return "auto", None, None


def _tool_to_call(
    body: Mapping[str, Any], messages: Sequence[Any], text: str, *, after_results: bool
) -> Mapping[str, Any] | None:
    """The ``function`` object of the tool this request gets a call to, if any
    (the rule of :mod:`.tool_choice`)."""
    functions = [
        tool["function"]
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), Mapping)
        and isinstance(tool["function"].get("name"), str)
    ]
    mode, forced, allowed = _tool_choice(body.get("tool_choice"))
    if allowed is not None:
        functions = [f for f in functions if f["name"] in allowed]
    called = {
        str((call.get("function") or {}).get("name"))
        for message in messages
        if isinstance(message, Mapping)
        for call in message.get("tool_calls") or []
        if isinstance(call, Mapping)
    }
    index = pick_tool(
        [f["name"] for f in functions],
        mode=mode,
        text=text,
        forced=forced,
        called=called,
        after_results=after_results,
    )
    return None if index is None else functions[index]


def structured_content(body: Mapping[str, Any], text: str) -> str | None:
    """The JSON a ``response_format`` asks for, or ``None`` for plain text.

    ``json_schema``: an instance of the schema built from ``text``
    (:mod:`.json_instance`); ``json_object``: the text itself when it is a JSON object,
    else ``{"text": text}``.
    """
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        value = instance(schema if isinstance(schema, Mapping) else {"type": "object"}, text)
        return orjson.dumps(value).decode()
    if kind == "json_object":
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        return text if isinstance(parsed, dict) else orjson.dumps({"text": text}).decode()
    return None


def plan_chat_reply(
    body: Mapping[str, Any],
    *,
    reply: str | None = None,
    usage: Mapping[str, Any] | None = None,
    tool_call_id: str = "call_mock",
) -> ChatReply:
    """Decide the reply for a chat request.

    Default: the last user text verbatim.  A tool call when ``tool_choice`` and the
    conversation say so (:mod:`.tool_choice`: forced, or the text says "tool"), its
    arguments an instance of the tool's ``parameters`` schema built from the text
    (:mod:`.json_instance`).  Right after a tool turn (the conversation ends with
    ``tool`` messages) and no forced call, the reply is the tools' output, so tool loops
    end.  A ``response_format`` gets JSON content (:func:`structured_content`).  An
    explicit ``reply`` always wins (plain text).  Completion tokens are the words of
    the reply (of name + arguments for a tool call).
    """
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    prompt = prompt_tokens(messages)
    text = last_user_text(messages)
    results = [m for m in reversed(messages) if isinstance(m, Mapping)]
    results = results[
        : next((i for i, m in enumerate(results) if m.get("role") != "tool"), len(results))
    ]
    function = None
    if reply is None:
        function = _tool_to_call(body, messages, text, after_results=bool(results))
    if function is not None:
        schema = function.get("parameters")
        arguments = orjson.dumps(
            instance(schema if isinstance(schema, Mapping) else {"type": "object"}, text)
        ).decode()
        call = ToolCall(id=tool_call_id, name=str(function["name"]), arguments=arguments)
        completion = count_words(call.name) + count_words(call.arguments)
        return ChatReply(None, call, "tool_calls", usage_block(prompt, completion, usage))
    if results and reply is None:
        reply = "".join(content_text(m.get("content")) for m in reversed(results))
    structured = structured_content(body, text) if reply is None else None
    if structured is not None:
        return ChatReply(
            structured,
            None,
            "stop",
            usage_block(prompt, count_words(structured), usage),
            structured=True,
        )
    content = text if reply is None else reply
    return ChatReply(content, None, "stop", usage_block(prompt, count_words(content), usage))
