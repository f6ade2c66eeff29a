"""The mock upstream's Anthropic ``/v1/messages`` and OpenAI ``/v1/responses`` routes."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream

HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
BODY = {
    "model": "claude-x",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello mock"}],
}


def post(
    mock: MockUpstream, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> httpx.Response:
    return httpx.post(
        mock.root_url + path,
        content=orjson.dumps(body),
        headers=HEADERS if headers is None else headers,
        timeout=5,
    )


def test_message_shape(mock: MockUpstream) -> None:
    r = post(mock, BODY)
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_01")
    body = r.json()
    assert set(body) == {
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    }
    assert body["id"].startswith("msg_01") and len(body["id"]) == 28
    assert body["content"] == [{"type": "text", "text": "hello mock"}]
    assert body["usage"]["input_tokens"] == 2 and body["usage"]["output_tokens"] == 2


def test_stream_bytes(mock: MockUpstream) -> None:
    r = post(mock, {**BODY, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.content.split(b"\n\n")[:-1]
    names = [e.split(b"\n")[0].removeprefix(b"event: ").decode() for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[2] == b'event: ping\ndata: {"type": "ping"}'
    assert events[3] == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta",'
        b'"index":0,"delta":{"type":"text_delta","text":"hello"}}'
    )


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (BODY, {"x-api-key": "k"}, "anthropic-version: header is required"),
        ({**BODY, "seed": 1}, None, "seed: Extra inputs are not permitted"),
        ({k: v for k, v in BODY.items() if k != "max_tokens"}, None, "max_tokens: Field required"),
        (
            {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            None,
            "messages.0.content.0: text content blocks must be non-empty",
        ),
        (
            {
                **BODY,
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {"role": "user", "content": "forgot the result"},
                ],
            },
            None,
            "messages.2: `tool_use` ids were found without `tool_result` blocks "
            "immediately after: t1",
        ),
        (
            {
                **BODY,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "AAAA",
                                },
                            }
                        ],
                    }
                ],
            },
            None,
            "messages.0.content.0.source.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'",
        ),
    ],
)
def test_validation(
    mock: MockUpstream, body: Any, headers: dict[str, str] | None, message: str
) -> None:
    r = post(mock, body, headers)
    assert r.status_code == 400
    error = r.json()
    assert error["type"] == "error" and error["request_id"].startswith("req_")
    assert error["error"] == {"type": "invalid_request_error", "message": message}


def test_scripted_errors_and_auth(mock: MockUpstream) -> None:
    mock.script(Behaviour(status=529), Behaviour(status=429, headers={"retry-after": "4"}))
    r = post(mock, BODY)
    assert r.status_code == 529 and r.json()["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    r = post(mock, BODY)
    assert r.status_code == 429 and r.headers["retry-after"] == "4"
    assert r.json()["error"]["type"] == "rate_limit_error"
    with MockUpstream(api_key="right") as guarded:
        r = httpx.post(
            guarded.root_url + "/v1/messages", json=BODY, headers={**HEADERS, "x-api-key": "wrong"}
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_error_after_chunks(mock: MockUpstream) -> None:
    mock.script(Behaviour(error_after_chunks=2, error_type="api_error", error_message="boom"))
    events = post(mock, {**BODY, "stream": True}).content.split(b"\n\n")[:-1]
    assert len(events) == 3
    assert events[-1] == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"}}'
    )


def test_replies_follow_the_request(mock: MockUpstream) -> None:
    tool = {
        "name": "lookup",
        "input_schema": {
            "type": "object",
            "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        },
    }
    forced = post(
        mock, {**BODY, "tools": [tool], "tool_choice": {"type": "tool", "name": "lookup"}}
    ).json()
    assert forced["stop_reason"] == "tool_use"
    assert forced["content"][0]["input"] == {"q": "hello mock", "n": 1}
    stopped = post(
        mock,
        {
            **BODY,
            "messages": [{"role": "user", "content": "1, 2, 3, 4"}],
            "stop_sequences": [", 3"],
        },
    ).json()
    assert stopped["content"] == [{"type": "text", "text": "1, 2"}]
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", ", 3")
    thought = post(mock, {**BODY, "thinking": {"type": "enabled", "budget_tokens": 1024}}).json()
    assert [b["type"] for b in thought["content"]] == ["thinking", "text"]


def test_responses_route(mock: MockUpstream) -> None:
    r = post(mock, {"model": "gpt-4o", "input": "hi there"}, {}, "/v1/responses")
    body = r.json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "hi there"
    assert body["usage"]["input_tokens"] == 2
    stream = post(
        mock, {"model": "gpt-4o", "input": "hi there", "stream": True}, {}, "/v1/responses"
    ).content.split(b"\n\n")[:-1]
    kinds = [orjson.loads(e.split(b"\ndata: ")[1])["type"] for e in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 2
