"""Reading an ``openai`` SDK chat stream the way a client does, for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterable

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk


def read_chat_stream(
    stream: Iterable[ChatCompletionChunk],
) -> tuple[str, CompletionUsage | None, str | None]:
    """``(text, usage, finish reason)``: the first choice's content deltas joined, the
    usage chunk's usage, and the last finish reason the stream named."""
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    return text, usage, finish
