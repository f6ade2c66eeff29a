"""AWS event-stream framing: the mock's encoder against botocore's parser, and the
relay-side splitter on arbitrary read boundaries."""

from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer

from llmrelay.errors import UpstreamError
from llmrelay.mock_answers.bedrock_format import encode_frame, event_frame, exception_frame
from llmrelay.providers.aws_eventstream import EventStreamSplitter, decode_frame


def test_encoded_frames_parse_with_botocore() -> None:
    raw = event_frame("contentBlockDelta", {"delta": {"text": "héllo"}}) + exception_frame(
        "throttlingException", "slow down"
    )
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    first, second = list(buffer)
    assert first.headers[":event-type"] == "contentBlockDelta"
    assert first.headers[":message-type"] == "event"
    assert b"h\xc3\xa9llo" in first.payload
    assert second.headers[":exception-type"] == "throttlingException"


@pytest.mark.parametrize("step", [1, 5, 13, 1000])
def test_splitter_cuts_whole_frames_at_any_read_size(step: int) -> None:
    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        encode_frame({":event-type": "x"}, b""),
        event_frame("metadata", {"usage": {"inputTokens": 1}}),
    ]
    raw = b"".join(frames)
    splitter = EventStreamSplitter("bedrock")
    out: list[bytes] = []
    for i in range(0, len(raw), step):
        out.extend(splitter.feed(raw[i : i + step]))
    assert out == frames
    assert decode_frame(out[2], "bedrock").event_type == "metadata"


def test_corrupt_frames_are_upstream_errors() -> None:
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[-1] ^= 0xFF  # message CRC no longer matches
    with pytest.raises(UpstreamError) as exc:
        decode_frame(bytes(frame), "bedrock")
    assert exc.value.status == 502 and "corrupt" in exc.value.message
    with pytest.raises(UpstreamError) as exc:
        EventStreamSplitter("bedrock").feed(b"\x00\x00\x00\x02garbage")
    assert "malformed event stream" in exc.value.message
