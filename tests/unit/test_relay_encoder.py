"""``relay_stream`` with a codec's output encoder: re-encoding, and nothing lost before an error."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from llmrelay.api.messages import MessagesCodec
from llmrelay.asgi import Request
from llmrelay.context import Call
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.base import ProviderSpec
from llmrelay.providers.mock import CannedResponse
from llmrelay.providers.registry import Provider
from llmrelay.redaction import Redactor
from llmrelay.routing.resolve import Target
from llmrelay.sse import EventSplitter, event_data
from llmrelay.stream_relay import relay_stream

UPSTREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    b'"type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Partial"}}\n\n'
    b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
    b'"message": "Overloaded"}}\n\n'
)


async def _relay(chunks: list[bytes]) -> tuple[bytes, Call]:
    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        return {}

    scope = {"type": "http", "path": "/v1/messages", "method": "POST", "headers": []}
    call = Call.start(Request(scope, receive), "/v1/messages")
    spec = ProviderSpec(name="claude", type="anthropic", base_url="http://x/v1", api_key="k")
    call.target = Target(Provider(spec, AnthropicAdapter(), transport=None), "claude-x")  # type: ignore[arg-type]
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    services: Any = SimpleNamespace(
        streams=set(),
        settings=SimpleNamespace(max_upstream_event_bytes=1 << 20),
        router=SimpleNamespace(redactor=Redactor(["k-secret-01234"])),
    )
    await relay_stream(
        services,
        call,
        MessagesCodec(),
        CannedResponse(200, chunks, "text/event-stream"),
        send,
        lambda services, call, codec: call.response_headers(),
    )
    return b"".join(sent), call


def _types(body: bytes) -> list[str]:
    return [orjson.loads(event_data(e) or b"{}")["type"] for e in EventSplitter().feed(body)]


async def test_events_before_an_error_in_the_same_read_are_kept() -> None:
    body, call = await _relay([UPSTREAM])  # everything, error included, in one read
    assert _types(body) == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert b'"text":"Partial"' in body
    assert call.error is not None and call.error.status == 529
    assert call.usage is not None and call.usage.prompt_tokens == 7


async def test_clean_stream_is_re_encoded_and_billed() -> None:
    clean = UPSTREAM.split(b"event: error")[0] + (
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    body, call = await _relay([clean[i : i + 50] for i in range(0, len(clean), 50)])
    assert _types(body) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert call.error is None and call.finish_reason == "stop"
    assert call.usage is not None and call.usage.completion_tokens == 2
