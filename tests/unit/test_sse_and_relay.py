from __future__ import annotations

import orjson
import pytest

from llmrelay.errors import UpstreamError
from llmrelay.providers.base import ProviderSpec
from llmrelay.providers.openai_compat import OpenAICompatAdapter, OpenAIStreamRelay
from llmrelay.sse import DONE, EventSplitter, event_data
from llmrelay.stream_relay import read_block
from llmrelay.telemetry.interaction import redact

SPEC = ProviderSpec(name="p", type="openai", base_url="http://x/v1/", api_key="sk-up")


def test_splitter_handles_any_chunking_and_crlf() -> None:
    stream = b'data: {"a":1}\r\n\r\ndata: {"b":2}\n\n: ping\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        splitter = EventSplitter()
        events: list[bytes] = []
        for i in range(0, len(stream), size):
            events.extend(splitter.feed(stream[i : i + size]))
        assert [event_data(e) for e in events] == [b'{"a":1}', b'{"b":2}', None, b"[DONE]"]
        assert splitter.rest() == b""


def test_multiline_data() -> None:
    assert event_data(b"event: x\ndata: a\ndata: b\n\n") == b"a\nb"


def chunk(**kw: object) -> bytes:
    return b"data: " + orjson.dumps({"object": "chat.completion.chunk", **kw}) + b"\n\n"


def test_relay_drops_injected_usage_chunk_only_when_not_asked() -> None:
    events = [
        chunk(
            choices=[{"index": 0, "delta": {"content": "hey"}, "finish_reason": None}], usage=None
        ),
        chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None),
        chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}),
        DONE,
    ]
    hidden = OpenAIStreamRelay(client_wants_usage=False)
    out = [b for e in events for b in hidden.feed(e)]
    assert out == [events[0], events[1], DONE]  # bytes unchanged, usage chunk dropped
    assert hidden.usage is not None and hidden.usage.total_tokens == 4
    assert hidden.finish_reason == "stop" and hidden.done and hidden.content_chars == 3
    shown = OpenAIStreamRelay(client_wants_usage=True)
    assert [b for e in events for b in shown.feed(e)] == events


def test_request_rewrites_model_and_asks_for_usage() -> None:
    call = OpenAICompatAdapter().chat_request(
        SPEC, {"model": "main/x", "messages": [], "stream": True}, "x", True
    )
    assert call.url == "http://x/v1/chat/completions"
    assert call.headers["authorization"] == "Bearer sk-up"
    body = orjson.loads(call.body)
    assert body["model"] == "x" and body["stream_options"] == {"include_usage": True}


def test_error_mapping_keeps_status_message_and_retry_after() -> None:
    err = OpenAICompatAdapter().error(
        SPEC,
        429,
        b'{"error":{"message":"slow","type":"requests","code":"rate_limit"}}',
        {"retry-after": "3"},
    )
    assert isinstance(err, UpstreamError)
    assert err.status == 429 and err.message == "slow" and err.headers == {"retry-after": "3"}
    assert err.retry_may_help
    html = OpenAICompatAdapter().error(SPEC, 502, b"<html>bad gateway</html>", {})
    assert "bad gateway" in html.message and html.status == 502


def test_redaction() -> None:
    text = (
        "Authorization: Bearer sk-relay-abcdefghijklmnop and key sk-ant-api03-xyzxyzxyz "
        "AIzaSyA1234567890abcdefghijk"
    )
    out = redact(text)
    assert "abcdefghijklmnop" not in out and "xyzxyzxyz" not in out
    assert "1234567890abcdefghijk" not in out


def test_splitter_bounds_an_event_that_never_ends() -> None:
    splitter = EventSplitter(1024, "p")
    assert splitter.feed(b"data: 1\n\n" + b"x" * 2000) == [b"data: 1\n\n"]  # whole ones out
    with pytest.raises(UpstreamError) as caught:
        splitter.feed(b"more")
    assert caught.value.code == "upstream_response_too_large"
    assert caught.value.status == 502
    assert EventSplitter().feed(b"y" * 5000) == []  # no cap: unchanged behaviour


def test_pass_through_answers_must_have_their_shape() -> None:
    adapter = OpenAICompatAdapter()
    ok = orjson.dumps({"choices": [{"finish_reason": "stop"}], "usage": {"prompt_tokens": 2}})
    assert adapter.chat_response(SPEC, ok, "m").finish_reason == "stop"
    for bad in (b"<html>", b"[]", b'{"object": "chat.completion"}', b'{"error": "down"}'):
        with pytest.raises(UpstreamError) as caught:
            adapter.chat_response(SPEC, bad, "m")
        assert caught.value.code == "upstream_invalid_response", bad
    assert adapter.embeddings_response(SPEC, b'{"data": []}', "m").usage is None


def test_pass_through_stream_error_chunk_is_raised_not_forwarded() -> None:
    relay = OpenAIStreamRelay(False, "p")
    event = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    with pytest.raises(UpstreamError, match="boom"):
        relay.feed(event)


def _per_event(wants: bool, pieces: list[bytes]) -> tuple[object, ...]:
    splitter, relay = EventSplitter(), OpenAIStreamRelay(wants)
    out = [b for p in pieces for e in splitter.feed(p) for b in relay.feed(e)]
    return b"".join(out), relay.content_chars, relay.finish_reason, relay.usage, relay.done


def _by_block(wants: bool, pieces: list[bytes]) -> tuple[object, ...]:
    splitter, relay = EventSplitter(), OpenAIStreamRelay(wants)
    out: list[bytes] = []
    for piece in pieces:
        out.extend(read_block(splitter, relay, piece, []))
    return b"".join(out), relay.content_chars, relay.finish_reason, relay.usage, relay.done


#: Chunks of shapes no provider sends (a broken or hostile upstream): each is relayed as it
#: came and not counted, and the rest of the stream is read as usual.
HOSTILE = (
    chunk(choices=[{"delta": {"content": "ok"}}])
    + b'data: {"choices":[1]}\n\n'
    + b'data: {"choices":[{"delta":"x"}]}\n\n'
    + b'data: {"choices":[{"delta":{"tool_calls":5}}]}\n\n'
    + b'data: {"choices":"abc"}\n\n'
    + b'data: {"choices":[],"usage":{"prompt_tokens":"many"}}\n\n'
    + b'data: {"choices":[],"usage":{"prompt_tokens":1e999}}\n\n'
    + b'data: {"choices":[],"usage":5}\n\n'
    + chunk(choices=[{"delta": {"content": "!"}, "finish_reason": "stop"}])
    + DONE
)


def test_chunks_of_another_shape_pass_on_uncounted() -> None:
    for wants in (False, True):
        out, chars, finish, usage, done = _per_event(wants, [HOSTILE])
        assert out == HOSTILE
        assert (chars, finish, usage, done) == (3, "stop", None, True)


BLOCK_STREAMS = [
    b"".join(
        [
            chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
            chunk(choices=[{"index": 0, "delta": {"content": 'h\u00e9 "q"\n'}}], usage=None),
            chunk(choices=[{"index": 0, "delta": {"content": "\U0001f600"}}]),
            chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 5}),
            DONE,
        ]
    ),
    chunk(choices=[{"delta": {"tool_calls": [{"function": {"arguments": '{"a":1}'}}]}}])
    + chunk(choices=[{"delta": {}, "finish_reason": "tool_calls"}])
    + DONE,
    chunk(choices=[{"delta": {"content": "x"}}]).replace(b"\n\n", b"\r\n\r\n") + b": ping\n\n",
    chunk(choices=[], usage={"total_tokens": 2}) + chunk(choices=[{"delta": {"content": "y"}}]),
    chunk(choices=[{"delta": {"content": "a"}}]) + b'data: {"error":{"message":"boom"}}\n\n',
    b'data: {"a":[{}\n\ndata: {}]}\n\ndata: [1]\n\n\ndata: {"choices":[]}\n\n\n\n',
    chunk(choices=[{"delta": {"content": "z"}}]) + b"event: e\ndata: {}\n\n" + DONE,
    HOSTILE,
]


@pytest.mark.parametrize("stream", BLOCK_STREAMS)
@pytest.mark.parametrize("wants", [False, True])
def test_block_reading_is_the_per_event_relay(stream: bytes, wants: bool) -> None:
    """A read's events read together (the relay's path when nothing rewrites them) give
    the same bytes, content count, finish reason, usage and end as one by one, however
    the stream is cut into reads."""
    for size in (1, 5, 64, 333, len(stream)):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        try:
            expected: object = _per_event(wants, pieces)
        except UpstreamError as exc:
            expected = exc.message
        try:
            got: object = _by_block(wants, pieces)
        except UpstreamError as exc:
            got = exc.message
        assert got == expected


class _CountingRelay(OpenAIStreamRelay):
    __slots__ = ("blocks",)

    def __init__(self) -> None:
        super().__init__(False)
        self.blocks = 0

    def feed_block(self, block: bytes) -> list[bytes] | None:
        self.blocks += 1
        return super().feed_block(block)


def test_a_read_of_one_event_skips_the_block_parse() -> None:
    """One event per read (a trickling stream) goes to feed(), cheaper than the block
    parse; a read of several takes the block parse once."""
    events = [chunk(choices=[{"delta": {"content": w}}]) for w in ("a", "b", "c")]
    splitter, relay = EventSplitter(), _CountingRelay()
    out = [b for event in events for b in read_block(splitter, relay, event, [])]
    assert out == events and relay.blocks == 0 and relay.content_chars == 3
    splitter, relay = EventSplitter(), _CountingRelay()
    assert read_block(splitter, relay, b"".join(events), []) == [b"".join(events)]
    assert relay.blocks == 1 and relay.content_chars == 3
