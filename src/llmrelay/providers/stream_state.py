"""What every stream translator reports to the relay, and reading its events' JSON.

The relay reads four fields of any :class:`~llmrelay.providers.base.StreamTranslator`
while a stream runs: usage, the finish reason, whether the provider ended cleanly, and
the characters generated so far (to estimate the usage of a cut stream).
:class:`StreamProgress` holds them, so every translator starts from the same zero state.
:func:`json_object` reads an SSE ``data`` payload for translators that skip (or pass
through unread) a payload that is not a JSON object instead of failing the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.providers.base import Usage


class StreamProgress:
    """Base of the stream translators: the :class:`StreamTranslator` state, at zero."""

    __slots__ = ("content_chars", "done", "finish_reason", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.content_chars = 0


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object an SSE ``data`` payload holds; None when it holds anything else."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
