"""Server-sent events: the one place that splits and encodes SSE bytes.

Upstream streams arrive in arbitrary TCP-sized pieces; :class:`EventSplitter` cuts them
at event boundaries (a blank line, ``\\n\\n`` or ``\\r\\n\\r\\n``) so each translator sees
whole events, and a pass-through relay can forward each event's bytes unchanged.

The unfinished event is held in memory until its blank line arrives, so it is bounded:
a stream that never sends one (or one enormous event) fails with
:class:`~llmrelay.errors.UpstreamResponseTooLarge` at ``max_event_bytes`` instead of
growing without limit.
"""

from __future__ import annotations

import orjson

from llmrelay.errors import UpstreamResponseTooLarge

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    """Incremental splitter of an SSE byte stream into whole raw events."""

    __slots__ = ("_buf", "_max", "_provider")

    def __init__(self, max_event_bytes: int | None = None, provider: str = "upstream") -> None:
        self._buf = b""
        self._max = max_event_bytes
        self._provider = provider

    def feed(self, chunk: bytes) -> list[bytes]:
        return self._split(self._join(chunk))

    def feed_block(self, chunk: bytes) -> bytes:
        """The whole events this read completes as one piece (``b""`` when none), for a
        relay that can read them together; :meth:`split_block` gives :meth:`feed`'s
        events of it when it cannot."""
        buf = self._join(chunk)
        end = buf.rfind(b"\n\n") + 2
        if end < 2:
            self._buf = buf
            return b""
        self._buf = buf[end:]
        return buf[:end]

    def split_block(self, block: bytes) -> list[bytes]:
        """The events :meth:`feed` would have given for the read :meth:`feed_block`
        returned ``block`` of (the same cuts, the same unfinished rest held)."""
        return self._split(block + self._buf)

    def _join(self, chunk: bytes) -> bytes:
        # The unfinished event left by earlier reads is checked (not this read's): the
        # whole events this read completes still go out before the stream is ended.
        if self._max is not None and len(self._buf) > self._max:
            self._buf = b""
            raise UpstreamResponseTooLarge(
                self._provider, "a stream event", self._max, "max_upstream_event_bytes"
            )
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        return buf

    def _split(self, buf: bytes) -> list[bytes]:
        events: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            events.append(buf[start : end + 2])
            start = end + 2
        self._buf = buf[start:]
        return events

    def rest(self) -> bytes:
        """Bytes of an event the stream never finished (no closing blank line)."""
        rest, self._buf = self._buf, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The ``data`` payload of one raw event (multi-line data joined with ``\\n``)."""
    if event.startswith(b"data: ") and event.count(b"\n") == 2:
        return event[6:-2]
    lines = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    if not lines:
        return None
    return b"\n".join(lines)


def event_name(event: bytes) -> str | None:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode()
    return None


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_event(name: str, obj: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
