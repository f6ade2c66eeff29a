"""Upstream answers of an unexpected shape, through a real gateway process.

A 200 whose JSON has the provider's outline but fields of the wrong type (``"choices":
[1]``, ``"content": 5``, ``"candidates": 5``, a tool input nested deeper than the JSON
encoder goes) is a 502 ``upstream_invalid_response`` in the client's own error shape
(the OpenAI SDK's on ``/v1/chat/completions``, Anthropic's on ``/v1/messages``), or an
error event of that shape once a stream has begun; an optional field of the wrong type
(token counts ``"many"``, ``1e30``, ``-5``) is ignored and the answer goes through.
Either way the call leaves its rows, with usage counted as what is known and bounded.
The unit-level hunt for such shapes is ``tests/fuzz/test_upstream_answers_fuzz.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from llmrelay.mock_answers.bedrock_format import MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY
from llmrelay.mock_upstream import Behaviour, MockUpstream
from llmrelay.providers.base import MAX_TOKENS
from tests.faults.test_upstream_answers import post, stream_text, wait_row
from tests.gateway_proc import GatewayProcess

#: JSON nested past what orjson encodes (254 levels), well within what it parses (1024).
DEEP = "[" * 300 + "1" + "]" * 300


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    root = upstream.root_url
    config: dict[str, Any] = {
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "k",
            },
            {"name": "ant", "type": "anthropic", "base_url": upstream.base_url, "api_key": "k"},
            {"name": "gemini", "type": "gemini", "base_url": root + "/v1beta", "api_key": "gm"},
            {
                "name": "bedrock",
                "type": "bedrock",
                "base_url": root,
                "region": "us-east-1",
                "aws_access_key_id": MOCK_ACCESS_KEY_ID,
                "aws_secret_access_key": MOCK_SECRET_ACCESS_KEY,
            },
        ],
    }
    gateway = GatewayProcess(tmp_path_factory.mktemp("upstream-shapes"), config)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("shapes")


def oai(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def claude(gw: GatewayProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)


def tokens(gw: GatewayProcess, request_id: str) -> tuple[int, int, int]:
    """The (prompt, completion, total) tokens of a call's ``responses`` row, once written."""
    sql = (
        "SELECT p.prompt_tokens, p.completion_tokens, p.total_tokens FROM requests r "
        f"JOIN responses p ON p.request_id = r.id WHERE r.request_id = '{request_id}'"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = gw.db_query(sql)
        if rows:
            prompt, completion, total = rows[0]
            return int(prompt), int(completion), int(total)
        time.sleep(0.1)
    raise AssertionError(f"no row for {request_id}")


def new_rid() -> str:
    """A request id of the test's own (the gateway keeps a client's ``x-request-id``), to
    find the rows of a streamed SDK call, whose headers the SDK does not show."""
    return f"shape-{uuid.uuid4().hex}"


def assert_502_row(gw: GatewayProcess, request_id: str) -> None:
    status, error_type, _, attempts = wait_row(gw, request_id)
    assert status == 502 and error_type == "api_error"
    assert attempts[-1]["error"] == "upstream_invalid_response"


def sse(*events: object) -> str:
    return "".join(f"data: {orjson.dumps(e).decode()}\n\n" for e in events)


def named(*events: dict[str, Any]) -> str:
    return "".join(f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n" for e in events)


def deep_in(text: str) -> str:
    """``text`` (JSON with a ``"@DEEP@"`` string) with that string replaced by :data:`DEEP`."""
    return text.replace('"@DEEP@"', DEEP)


_MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    },
}


# -- OpenAI-compatible ----------------------------------------------------------------------


def test_openai_choices_of_numbers_is_502_in_openai_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """OpenAI-compatible 200 with "choices": [1] and usage "x" -> 502 (OpenAI SDK), row"""
    mock.script(
        Behaviour(raw_body='{"id": "c", "object": "chat.completion", "choices": [1], "usage": "x"}')
    )
    with pytest.raises(openai.APIStatusError) as caught:
        oai(gw, key).chat.completions.create(
            model="up/shape-choices", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "upstream_invalid_response"
    assert "a choice is not an object" in body["message"]
    assert_502_row(gw, caught.value.response.headers["x-request-id"])


def test_openai_hostile_usage_is_bounded_in_the_rows(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """OpenAI-compatible usage 1e30 / -5 / "many" -> 200 as sent, rows count bounded tokens"""
    usage = {"prompt_tokens": 1e30, "completion_tokens": -5, "total_tokens": "many"}
    mock.script(Behaviour(usage=usage))
    r = post(gw, key, {"model": "up/shape-usage", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["total_tokens"] == "many"  # passed through as the upstream sent it
    assert tokens(gw, r.headers["x-request-id"]) == (MAX_TOKENS, 0, MAX_TOKENS)


def test_openai_stream_with_hostile_usage_completes(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """OpenAI-compatible stream, usage chunk "many" / 1e30 -> relayed to [DONE], bounded row"""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    raw = sse(
        {**chunk, "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]},
        {**chunk, "choices": [1, "x", {"index": 0, "delta": "y", "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1e30}},
    )
    mock.script(Behaviour(raw_body=raw + "data: [DONE]\n\n"))
    rid = new_rid()
    body = {
        "model": "up/shape-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    text = stream_text(gw, key, body, **{"x-request-id": rid})
    assert '"choices":[1,"x"' in text and text.endswith("data: [DONE]\n\n")  # as it came
    assert tokens(gw, rid) == (0, MAX_TOKENS, MAX_TOKENS)


def test_openai_stream_unencodable_tool_call_is_error_event_in_anthropic_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """OpenAI-compatible stream to /v1/messages, tool call id nested 300 deep -> error event"""
    raw = deep_in(
        sse(
            {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
            {
                "id": "c",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "id": "@DEEP@", "function": {}}]},
                    }
                ],
            },
        )
    )
    mock.script(Behaviour(raw_body=raw + "data: [DONE]\n\n"))
    rid = new_rid()
    text = stream_text(
        gw,
        key,
        {
            "model": "up/shape-messages",
            "max_tokens": 16,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        "/v1/messages",
        **{"x-request-id": rid},
    )
    events = [e for e in text.split("\n\n") if e.startswith("event: ")]
    assert events[-1].startswith("event: error")
    error = orjson.loads(events[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "unexpected shape" in error["error"]["message"]
    _, error_type, message, _ = wait_row(gw, rid)
    assert error_type == "api_error" and "unexpected shape" in str(message)


# -- Anthropic -----------------------------------------------------------------------------


def test_anthropic_content_of_a_number_is_502_in_anthropic_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic 200 message with "content": 5 (/v1/messages pass-through) -> 502, row"""
    mock.script(Behaviour(raw_body='{"type": "message", "content": 5, "usage": "x"}'))
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude(gw, key).messages.create(
            model="ant/shape-content", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "content is not a list" in body["error"]["message"]
    assert_502_row(gw, caught.value.response.headers["x-request-id"])


def test_anthropic_hostile_usage_passes_through_with_bounded_rows(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic message, usage "many" / 1e30 and a stop_reason object -> 200, bounded row"""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": {"odd": True},
        "usage": {"input_tokens": "many", "output_tokens": 1e30},
    }
    mock.script(Behaviour(raw_body=orjson.dumps(message).decode()))
    answer = claude(gw, key).messages.with_raw_response.create(
        model="ant/shape-usage", max_tokens=16, messages=[{"role": "user", "content": "x"}]
    )
    assert answer.status_code == 200
    assert tokens(gw, answer.headers["x-request-id"]) == (0, MAX_TOKENS, MAX_TOKENS)


def test_anthropic_stream_unencodable_tool_id_is_error_event_in_openai_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic stream to /v1/chat/completions, tool_use id nested 300 deep -> error event"""
    block = {"type": "tool_use", "id": "@DEEP@", "name": "f", "input": {}}
    raw = deep_in(
        named(
            _MESSAGE_START,
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
    )
    mock.script(Behaviour(raw_body=raw))
    rid = new_rid()
    with (
        pytest.raises(openai.APIError) as caught,
        oai(gw, key).chat.completions.create(
            model="ant/shape-stream",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers={"x-request-id": rid},
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "unexpected shape" in caught.value.message
    _, error_type, message, _ = wait_row(gw, rid)
    assert error_type == "api_error" and "unexpected shape" in str(message)
    assert tokens(gw, rid)[0] == 7  # what message_start had reported


def test_anthropic_stream_with_hostile_usage_completes(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic stream, message_delta usage "many", index "x" -> completes, usage known"""
    raw = named(
        _MESSAGE_START,
        {"type": "content_block_start", "index": "x", "content_block": {"type": "text"}},
        {
            "type": "content_block_delta",
            "index": "x",
            "delta": {"type": "text_delta", "text": "hi"},
        },
        {"type": "message_delta", "delta": {"stop_reason": 5}, "usage": {"output_tokens": "many"}},
        {"type": "message_stop"},
    )
    mock.script(Behaviour(raw_body=raw))
    rid = new_rid()
    with oai(gw, key).chat.completions.create(
        model="ant/shape-stream-usage",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers={"x-request-id": rid},
    ) as stream:
        texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert "hi" in texts
    assert tokens(gw, rid) == (7, 0, 7)


# -- Gemini --------------------------------------------------------------------------------


def test_gemini_candidates_of_a_number_is_502_in_openai_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Gemini 200 with "candidates": 5 -> 502 upstream_invalid_response (OpenAI SDK), row"""
    mock.script(Behaviour(raw_body='{"candidates": 5, "usageMetadata": "x"}'))
    with pytest.raises(openai.APIStatusError) as caught:
        oai(gw, key).chat.completions.create(
            model="gemini/shape-candidates", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "upstream_invalid_response"
    assert_502_row(gw, caught.value.response.headers["x-request-id"])


def test_gemini_stream_unencodable_args_is_error_event_in_anthropic_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Gemini stream to /v1/messages, functionCall args nested 300 deep -> error event, row"""
    usage = {"promptTokenCount": 4, "candidatesTokenCount": "many"}
    text_part = {"content": {"parts": [{"text": "hi"}]}, "index": 0}
    call_part = {"content": {"parts": [{"functionCall": {"name": "f", "args": "@DEEP@"}}]}}
    raw = deep_in(
        sse(
            {"candidates": [text_part], "usageMetadata": usage},
            {"candidates": [call_part]},
        )
    )
    mock.script(Behaviour(raw_body=raw))
    rid = new_rid()
    with (
        pytest.raises(anthropic.APIError) as caught,
        claude(gw, key).messages.stream(
            model="gemini/shape-stream",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-request-id": rid},
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "unexpected shape" in str(caught.value)
    _, error_type, message, _ = wait_row(gw, rid)
    assert error_type == "api_error" and "unexpected shape" in str(message)
    assert tokens(gw, rid)[0] == 4


# -- Bedrock -------------------------------------------------------------------------------


def test_bedrock_content_of_a_number_is_502_in_anthropic_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Bedrock Converse 200 with "content": 5 (via /v1/messages) -> 502 in Anthropic's shape"""
    mock.script(Behaviour(raw_body='{"output": {"message": {"content": 5}}, "usage": "x"}'))
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude(gw, key).messages.create(
            model="bedrock/anthropic.claude-shape-v1:0",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
        )
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert_502_row(gw, caught.value.response.headers["x-request-id"])


def test_bedrock_stream_with_hostile_usage_completes(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """ConverseStream metadata usage "many" / 1e30 / -5 -> stream completes, bounded row"""
    mock.script(Behaviour(usage={"inputTokens": "many", "outputTokens": 1e30, "totalTokens": -5}))
    rid = new_rid()
    with oai(gw, key).chat.completions.create(
        model="bedrock/anthropic.claude-shape-stream-v1:0",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == MAX_TOKENS
    assert tokens(gw, rid) == (0, MAX_TOKENS, MAX_TOKENS)


def test_bedrock_stream_with_usage_of_objects_is_estimated(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """ConverseStream usage with no count in it (objects, lists) -> completes, usage estimated"""
    usage = {"inputTokens": {"deep": [[[[1]]]]}, "outputTokens": [3], "totalTokens": "x"}
    mock.script(Behaviour(usage=usage))
    rid = new_rid()
    with oai(gw, key).chat.completions.create(
        model="bedrock/anthropic.claude-shape-deep-v1:0",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        extra_headers={"x-request-id": rid},
    ) as stream:
        assert list(stream)
    # No usage report at all: billed by what was sent and delivered, as a cut stream is.
    prompt, completion, total = tokens(gw, rid)
    assert prompt > 0 and completion > 0 and total == prompt + completion
