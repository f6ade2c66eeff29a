"""What every stream translator reports to the relay, and reading its events' JSON.

The relay reads four fields of any :class:`~llmrelay.providers.base.StreamTranslator`
while a stream runs: usage, the finish reason, whether the provider ended cleanly, and
the characters generated so far (to estimate the usage of a cut stream).
:class:`StreamProgress` holds them, so every translator starts from the same zero state.
:func:`json_object` reads an SSE ``data`` payload for translators that skip (or pass
through unread) a payload that is not a JSON object instead of failing the stream.

A translating stream reads fields of the upstream's events and builds new ones from
them; an event whose fields have types the provider never sends (``"content_block":
[1]``, ``"index": "x"``, arguments nested deeper than the JSON encoder goes) makes
reading it raise one of :data:`SHAPE_ERRORS`. The translators catch those where they
read an event and raise :func:`unexpected_event` instead: the relay ends the stream
with the client's error event (a 502 ``upstream_invalid_response``), rather than an
exception of ours cutting the stream with no end. Optional fields of a wrong type
(usage counts, an index) are read leniently where they enter and never get this far.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.errors import UpstreamInvalidResponse
from llmrelay.providers.base import Usage

#: What reading a value of an unexpected type raises (the router treats a non-streamed
#: body the same way: ``routing/router.py``). ``RecursionError`` and ``OverflowError``
#: are there for nesting and numbers beyond what Python or orjson handle.
SHAPE_ERRORS = (
    AttributeError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
)


def unexpected_event(provider: str) -> UpstreamInvalidResponse:
    """The error a stream ends with when one of its events is not the provider's shape."""
    return UpstreamInvalidResponse(provider, "a stream event of an unexpected shape")


class StreamProgress:
    """Base of the stream translators: the :class:`StreamTranslator` state, at zero."""

    __slots__ = ("content_chars", "done", "finish_reason", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.content_chars = 0


def small_index(value: Any, default: int = 0) -> int:
    """A position (block, choice or tool-call index) an upstream sent: a small
    non-negative int, else ``default`` (it keys our state and goes out in JSON)."""
    return value if type(value) is int and 0 <= value < 1 << 16 else default


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object an SSE ``data`` payload holds; None when it holds anything else."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
