"""One stored answer: its bytes, where it came from, what it was billed, when it was made.

An answer in the internal form (OpenAI's ``chat.completion``, or an embeddings list) is
stored whole and serves a streamed call too (:mod:`.replay` builds the chunks); a
streamed answer in that form is assembled into a completion before it is stored. A
pass-through answer (the provider's own Anthropic Messages or Responses shape) is kept
in the form it came in (``events`` for a stream, ``body`` otherwise) and serves only
calls that want that form; its key carries the form (:func:`form_key`).

Entries are msgpack (``msgspec``): compact, and decoded into typed structs in ~2 µs.
"""

from __future__ import annotations

import msgspec

from llmrelay.providers.base import Usage


class Entry(msgspec.Struct, frozen=True):
    #: Unix time it was stored (its age is reported on hits).
    created: float
    provider: str
    model: str
    #: In the provider's own shape (``call.passthrough`` of the call that stored it).
    passthrough: bool = False
    #: Stream events (pass-through streams only); else ``body`` holds the answer.
    stream: bool = False
    body: bytes = b""
    events: list[bytes] = []
    usage: Usage | None = None
    finish_reason: str | None = None
    #: What the answer cost when it was made (nano-dollars): what each hit saves.
    cost_nanos: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode(entry: Entry) -> bytes:
    return _encoder.encode(entry)


def decode(raw: bytes) -> Entry | None:
    """The entry, or ``None`` for bytes that are not one (another version wrote them)."""
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def form_key(key: str, stream: bool) -> str:
    """Where a pass-through entry of one form lives (internal ones live at ``key``)."""
    return key + (":stream" if stream else ":json")
