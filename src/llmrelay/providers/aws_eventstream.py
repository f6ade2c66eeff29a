"""AWS event-stream framing (``application/vnd.amazon.eventstream``), as Bedrock streams.

Each frame is ``total length (u32) | headers length (u32) | prelude CRC | headers |
payload | message CRC``. :class:`EventStreamSplitter` only cuts the byte stream at
frame boundaries (it reads the length prefix; the relay's hot loop stays cheap);
:func:`decode_frame` hands one whole frame to botocore's event-stream parser, which
checks both CRCs and decodes the typed headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrelay.errors import UpstreamError

_PRELUDE = 12
#: AWS caps a frame at 16 MiB; a longer length prefix means the stream is garbage.
MAX_FRAME = 16 * 1024 * 1024


class EventStreamSplitter:
    """Incremental splitter of event-stream bytes into whole frames.

    ``max_frame`` bounds what one frame may buffer (the gateway's
    ``max_upstream_event_bytes``): a longer length prefix fails the stream with a 502
    before its bytes are held.
    """

    __slots__ = ("_buf", "_max_frame", "_provider")

    def __init__(self, provider: str, max_frame: int = MAX_FRAME) -> None:
        self._buf = b""
        self._provider = provider
        self._max_frame = max_frame

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        frames: list[bytes] = []
        start = 0
        while len(buf) - start >= 4:
            total = int.from_bytes(buf[start : start + 4], "big")
            if total < _PRELUDE + 4 or total > self._max_frame:
                raise UpstreamError(
                    f"upstream {self._provider} sent a malformed event stream "
                    f"(frame length {total})",
                    status=502,
                    provider=self._provider,
                )
            if len(buf) - start < total:
                break
            frames.append(buf[start : start + total])
            start += total
        self._buf = buf[start:]
        return frames


@dataclass(frozen=True, slots=True)
class Frame:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str:
        return str(self.headers.get(":event-type") or self.headers.get(":exception-type") or "")


def decode_frame(frame: bytes, provider: str) -> Frame:
    """One whole frame, CRC-checked and decoded by botocore.

    Past its CRC checks botocore's parser trusts the headers it reads: a header of an
    unknown value type raises ``KeyError``, a name that is not UTF-8
    ``UnicodeDecodeError``, one cut short ``struct.error``. Any failure of the parser on
    these bytes is a corrupt frame, the upstream's fault (502), never ours.
    """
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    try:
        message = next(buffer)
    except Exception as exc:  # a pure parser of hostile bytes: every failure is theirs
        raise UpstreamError(
            f"upstream {provider} sent a corrupt event-stream frame ({type(exc).__name__})",
            status=502,
            provider=provider,
        ) from exc
    return Frame(dict(message.headers), bytes(message.payload))
