"""``/v1/responses`` translation to chat and back; the typed stream checked by the SDK itself."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import omit
from openai._models import construct_type_unchecked
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from llmrelay.api.responses_stream import ResponsesEncoder
from llmrelay.api.responses_translate import to_chat, to_response
from llmrelay.errors import InvalidRequest, UpstreamError
from llmrelay.sse import EventSplitter, event_data, event_name
from tests.fuzz.seeds import RESPONSES_FULL

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def test_request_to_chat() -> None:
    body = {**RESPONSES_FULL, "model": "claude"}
    assert to_chat(body, "claude") == {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "15C"},
        ],
        "max_tokens": 50,
        "temperature": 0.3,
        "user": "u1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": TOOL["parameters"],
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "low",
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"bogus": 1}, "bogus"),
        ({"input": None}, "input"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
    ],
)
def test_untranslatable_requests(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat({"model": "m", "input": "hi", **extra}, "claude")
    assert info.value.param == param


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 1,
        "model": "claude-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 7,
            "total_tokens": 37,
            "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
        },
    }


def test_response_object() -> None:
    completion = _completion(
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        "tool_calls",
    )
    out = to_response(
        {"model": "claude", "input": "x", "tools": [TOOL]}, completion, "resp_abc", 1700000000
    )
    assert out["id"] == "resp_abc" and out["object"] == "response"
    assert out["status"] == "completed" and out["model"] == "claude-x"
    assert out["output"] == [
        {
            "id": "msg_abc",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Sure.", "annotations": [], "logprobs": []}
            ],
        },
        {
            "id": "fc_toolu_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "toolu_1",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
    ]
    assert out["usage"] == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 37,
    }
    assert out["tools"] == [TOOL]


def test_length_is_incomplete() -> None:
    out = to_response(
        {"model": "m", "input": "x"},
        _completion({"role": "assistant", "content": "Once"}, "length"),
        "resp_1",
        1,
    )
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    obj: dict[str, Any] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "claude-x",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _run(chunks: list[bytes]) -> tuple[list[dict[str, Any]], Any]:
    """Encode, then let the openai SDK's own stream state machine consume the events."""
    encoder = ResponsesEncoder(
        {"model": "claude", "input": "x", "tools": [TOOL]}, "resp_abc", 1700000000
    )
    raw = b"".join(out for c in chunks for out in encoder.feed(c))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=[], text_format=omit)
    events = []
    for event in EventSplitter().feed(raw):
        data = event_data(event)
        assert data is not None
        payload = orjson.loads(data)
        assert event_name(event) == payload["type"]
        events.append(payload)
        state.handle_event(construct_type_unchecked(type_=ResponseStreamEvent, value=payload))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, state._completed_response


def test_stream_text_reasoning_and_tool_calls() -> None:
    events, final = _run(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"reasoning_content": "thinking..."}),
            _chunk({"content": "Hello"}),
            _chunk({"content": " there"}),
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]}),
            _chunk({}, "tool_calls"),
            _chunk({}, usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}),
            b"data: [DONE]\n\n",
        ]
    )
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert final is not None
    assert final.output_text == "Hello there"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    call = final.output[2]
    assert call.arguments == '{"city":"Rome"}' and call.call_id == "call_1"
    assert final.usage.input_tokens == 3 and final.usage.output_tokens == 5


def test_stream_incomplete_and_error_events() -> None:
    events, _ = _run([_chunk({"content": "Once"}), _chunk({}, "length"), b"data: [DONE]\n\n"])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    encoder = ResponsesEncoder({"model": "m", "input": "x"}, "resp_1", 1)
    encoder.feed(_chunk({"content": "a"}))
    error = encoder.error_event(UpstreamError("boom", status=500, code="server_error"))
    payload = orjson.loads(event_data(error) or b"")
    assert event_name(error) == "error"
    assert payload == {
        "type": "error",
        "sequence_number": 5,
        "code": "server_error",
        "message": "boom",
        "param": None,
    }
