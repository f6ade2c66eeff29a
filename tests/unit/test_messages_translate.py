"""``/v1/messages`` translation: Anthropic requests in, Anthropic answers and events out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmrelay.api.messages_stream import AnthropicEncoder
from llmrelay.api.messages_translate import to_chat, to_message, validate
from llmrelay.errors import InvalidRequest, RateLimited, UpstreamError
from llmrelay.sse import EventSplitter, event_data, event_name

BASE = {"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**BASE, "max_tokens": None}, "max_tokens"),
        ({**BASE, "max_tokens": 0}, "max_tokens"),
        ({**BASE, "messages": []}, "messages"),
        ({**BASE, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_validate(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate(body)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"frobnicate": 1}, "frobnicate"),
        ({"container": "c1"}, "container"),
        ({"mcp_servers": []}, "mcp_servers"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_untranslatable_fields_are_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat({**BASE, **extra})
    assert info.value.param == param


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (4096, "medium"), (16000, "high")])
def test_thinking_becomes_reasoning_effort(budget: int, effort: str) -> None:
    chat = to_chat({**BASE, "thinking": {"type": "enabled", "budget_tokens": budget}})
    assert chat["reasoning_effort"] == effort
    assert "reasoning_effort" not in to_chat({**BASE, "thinking": {"type": "disabled"}})


def test_tool_results_come_first_and_images_move_to_a_user_turn() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    body = {
        **BASE,
        "messages": [
            {"role": "user", "content": "draw"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "render", "input": {"w": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "here you go"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": False,
                        "content": [{"type": "text", "text": "done"}, image],
                    },
                ],
            },
        ],
    }
    messages = to_chat(body)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "render", "arguments": '{"w":1}'}}
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": [{"type": "text", "text": "done"}],
    }
    assert messages[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "here you go"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }


def test_stream_asks_for_usage() -> None:
    chat = to_chat({**BASE, "stream": True, "metadata": {"user_id": "u1"}, "stop_sequences": ["x"]})
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["user"] == "u1" and chat["stop"] == ["x"]


def test_to_message_keeps_unparseable_arguments() -> None:
    completion = {
        "id": "chatcmpl-abc",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "not json"},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    message = to_message(completion)
    assert message["id"] == "msg_abc"
    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"raw_arguments": "not json"}}
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 6,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
        "output_tokens": 2,
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-xyz",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _events(encoder: AnthropicEncoder, events: list[bytes]) -> list[tuple[str, Any]]:
    raw = b"".join(out for e in events for out in encoder.feed(e))
    parsed = []
    for event in EventSplitter().feed(raw):
        data = event_data(event)
        assert data is not None
        payload = orjson.loads(data)
        assert event_name(event) == payload["type"]  # `event:` names the data's type
        parsed.append((payload["type"], payload))
    return parsed


def test_encoder_event_sequence_for_text_then_tools() -> None:
    encoder = AnthropicEncoder("gpt-4o")
    events = _events(
        encoder,
        [
            _chunk({"role": "assistant", "content": ""}),
            b": keep-alive\n\n",
            _chunk({"content": "Let me look."}),
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "g", "arguments": "{}"},
                        }
                    ]
                }
            ),
            _chunk({}, "tool_calls"),
            _chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
            b"data: [DONE]\n\n",
        ],
    )
    kinds = [k for k, _ in events]
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_xyz"
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_a",
        "name": "f",
        "input": {},
    }
    assert events[12][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 4,
        },
    }


def test_encoder_error_event_and_nothing_after() -> None:
    encoder = AnthropicEncoder("gpt-4o")
    encoder.feed(_chunk({"content": "x"}))
    error = encoder.error_event(
        UpstreamError("Overloaded", status=529, error_type="overloaded_error")
    )
    assert error == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    assert encoder.feed(b"data: [DONE]\n\n") == []
    ours = AnthropicEncoder("m").error_event(RateLimited("slow down"))
    assert b'"type":"rate_limit_error"' in ours
