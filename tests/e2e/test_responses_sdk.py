"""``client.responses.create`` through llmrelay, with the official ``openai`` SDK.

Translated to chat for an Anthropic provider and an OpenAI-compatible host; passed
through untouched to a ``type: openai`` provider (the mock's ``/v1/responses``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
#: model -> the upstream path it must reach
MODELS = {
    "claude/claude-sonnet-4-5": "/v1/messages",
    "oai/gpt-4o": "/v1/responses",
    "up/gpt-4o": "/v1/chat/completions",
}


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-responses"),
        {
            "providers": [
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": upstream.base_url,
                    "api_key": "sk-ant-upstream-1234",
                },
                {
                    "name": "oai",
                    "type": "openai",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
            ]
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.create_key("responses"), max_retries=0)
    yield c
    c.close()


@pytest.mark.parametrize("model", list(MODELS))
def test_non_stream(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    r = client.responses.create(model=model, input="hello responses api", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed"
    assert r.output_text == "hello responses api"
    assert r.usage is not None and r.usage.output_tokens == 3
    assert mock.last_request.path == MODELS[model]
    if model.startswith("oai/"):
        assert mock.last_request.body == {
            "model": "gpt-4o",
            "input": "hello responses api",
            "instructions": "Be brief.",
        }
    else:
        assert r.id.startswith("resp_") and r.instructions == "Be brief."


@pytest.mark.parametrize("model", list(MODELS))
def test_stream(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    events = list(client.responses.create(model=model, input="one two three four", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "one two three four"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "one two three four"
    assert final.usage is not None and final.usage.output_tokens == 4
    assert mock.last_request.path == MODELS[model]


@pytest.mark.parametrize("model", list(MODELS))
def test_stream_helper(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    with client.responses.stream(model=model, input="through the helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "through the helper"


@pytest.mark.parametrize("model", list(MODELS))
def test_tools_multi_turn(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    first = client.responses.create(model=model, input="use the tool for Oslo", tools=[TOOL])  # type: ignore[list-item]
    calls = [o for o in first.output if o.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"]
    call = calls[0]
    json.loads(call.arguments)  # a JSON string, as the SDK expects
    follow_up: list[Any] = [
        {"role": "user", "content": "use the tool for Oslo"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "snowing"},
    ]
    with client.responses.stream(model=model, input=follow_up, tools=[TOOL]) as stream:  # type: ignore[list-item]
        final = stream.get_final_response()
    assert final.output_text == "snowing"
    assert mock.last_request.path == MODELS[model]


def test_streamed_tool_call_translated(client: openai.OpenAI, mock: MockUpstream) -> None:
    events = list(
        client.responses.create(
            model="claude/claude-sonnet-4-5",
            input="tool for Lima",
            tools=[TOOL],  # type: ignore[list-item]
            stream=True,
        )
    )
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "tool for Lima"}
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[-1].item.type == "function_call"  # type: ignore[union-attr]
    assert mock.last_request.body["tools"][0]["name"] == "get_weather"


@pytest.mark.parametrize("model", ["claude/claude-sonnet-4-5", "oai/gpt-4o"])
def test_error_mid_stream(client: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    mock.script(Behaviour(error_after_chunks=4))
    events = list(client.responses.create(model=model, input="a b c d e f", stream=True))
    assert events[-1].type == "error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert not any(e.type == "response.completed" for e in events)


def test_errors_and_unsupported(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(status=429, headers={"retry-after": "2"}))
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="claude/claude-sonnet-4-5", input="x")
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(
            model="claude/claude-sonnet-4-5", input="x", previous_response_id="resp_123"
        )
    assert bad.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert mock.requests[-1].headers.get("x-api-key") == "sk-ant-upstream-1234"  # only the 429


def test_usage_is_logged(gw: GatewayProcess, client: openai.OpenAI, mock: MockUpstream) -> None:
    for i, model in enumerate(MODELS):
        client.responses.create(
            model=model,
            input="five words in this input",
            extra_headers={"x-request-id": f"resp-log-{i}"},
        )
    wanted = [f"resp-log-{i}" for i in range(len(MODELS))]
    deadline, rows = time.monotonic() + 5, {}
    while len(rows) < len(wanted) and time.monotonic() < deadline:
        time.sleep(0.02)
        rows = {
            r["request_id"]: r
            for r in map(json.loads, gw.interactions().splitlines())
            if r.get("request_id") in wanted
        }
    assert [rows[w]["route"] for w in wanted] == ["/v1/responses"] * 3
    assert [rows[w]["usage"]["completion_tokens"] for w in wanted] == [5, 5, 5]
