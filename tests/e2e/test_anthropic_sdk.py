"""Anthropic through llmrelay, end to end, with the official SDKs and the real mock server.

* the ``openai`` SDK → llmrelay → an Anthropic provider (the mock's ``/v1/messages``);
* the ``anthropic`` SDK → llmrelay's ``/v1/messages`` → an OpenAI-format upstream
  (translated) and an Anthropic upstream (passed through);
* errors in each client's own shape, usage logged and billed, rejected input not.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.sdk_streams import read_chat_stream

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2279d8d0000000049454e44ae426082"
    )
).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLAUDE_WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": WEATHER["function"]["parameters"],
}  # type: ignore[index]


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-anthropic"),
        {
            "providers": [
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": upstream.base_url,
                    "api_key": "sk-ant-upstream-1234",
                },
                {
                    "name": "loose",
                    "type": "anthropic",
                    "base_url": upstream.root_url,
                    "api_key": "sk-ant-upstream-1234",
                    "drop_params": True,
                },
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
            ],
            "models": [
                {"name": "claude-sonnet", "provider": "claude", "model": "claude-sonnet-4-5"}
            ],
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("anthropic-e2e")


@pytest.fixture(scope="module")
def oai(gw: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(gw: GatewayProcess, key: str) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    yield client
    client.close()


def logged(gw: GatewayProcess, *request_ids: str) -> dict[str, dict[str, Any]]:
    """Interaction rows by request id, once the last id's row is written (writes batch)."""
    deadline = time.monotonic() + 5
    while True:
        rows = [json.loads(line) for line in gw.interactions().splitlines() if line.strip()]
        found = {r["request_id"]: r for r in rows if r.get("request_id") in request_ids}
        if request_ids[-1] in found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


# -- the openai SDK → an Anthropic provider ----------------------------------------------


def test_openai_sdk_non_stream(oai: openai.OpenAI, mock: MockUpstream) -> None:
    r = oai.chat.completions.create(
        model="claude-sonnet",
        max_tokens=50,
        temperature=0.5,
        stop=["zzz"],
        messages=[
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "hello from openai"},
        ],
    )
    assert r.choices[0].message.content == "hello from openai"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 3
    sent = mock.last_request
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-upstream-1234"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": "Be nice.",
        "messages": [{"role": "user", "content": "hello from openai"}],
        "temperature": 0.5,
        "stop_sequences": ["zzz"],
    }


def test_openai_sdk_stream_with_usage(oai: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(usage={"cache_read_input_tokens": 40}))
    stream = oai.chat.completions.create(
        model="claude/claude-haiku-4-5",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = read_chat_stream(stream)
    assert text == "one two three" and finish == "stop"
    assert usage is not None and usage.prompt_tokens == 43 and usage.completion_tokens == 3
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 40


def test_openai_sdk_tools_multi_turn(oai: openai.OpenAI, mock: MockUpstream) -> None:
    messages: list[Any] = [{"role": "user", "content": "use the tool for Paris"}]
    r = oai.chat.completions.create(model="claude-sonnet", messages=messages, tools=[WEATHER])
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "use the tool for Paris"}  # type: ignore[union-attr]
    messages += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    # Second turn, streamed: the mock demands the tool_result right after the tool_use.
    chunks = list(
        oai.chat.completions.create(
            model="claude-sonnet", messages=messages, tools=[WEATHER], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "sunny, 21C"
    sent = mock.last_request.body
    assert sent["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"city": "use the tool for Paris"},
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}],
    }


def test_openai_sdk_streamed_tool_call(oai: openai.OpenAI, mock: MockUpstream) -> None:
    stream = oai.chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "tool time"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += tc.function.name or "" if tc.function else ""
            args += tc.function.arguments or "" if tc.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert name == "get_weather" and json.loads(args) == {"city": "tool time"}
    assert finish == "tool_calls"
    assert mock.last_request.body["tool_choice"] == {"type": "any"}


def test_openai_sdk_images(oai: openai.OpenAI, mock: MockUpstream) -> None:
    r = oai.chat.completions.create(
        model="claude-sonnet",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "two images"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "two images"
    blocks = mock.last_request.body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


def test_openai_sdk_json_schema(oai: openai.OpenAI, mock: MockUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    r = oai.chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "forty two"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    assert json.loads(r.choices[0].message.content or "") == {"answer": "forty two"}
    assert r.choices[0].finish_reason == "stop" and not r.choices[0].message.tool_calls


def test_openai_sdk_finish_reasons(oai: openai.OpenAI, mock: MockUpstream) -> None:
    r = oai.chat.completions.create(
        model="claude-sonnet", max_tokens=2, messages=[{"role": "user", "content": "a b c d"}]
    )
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("a b", "length")
    r = oai.chat.completions.create(
        model="claude-sonnet", messages=[{"role": "user", "content": "I refuse this"}]
    )
    assert r.choices[0].finish_reason == "content_filter"


def test_unsupported_parameter_is_400_and_not_logged(
    gw: GatewayProcess, oai: openai.OpenAI, mock: MockUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model="claude-sonnet",
            seed=7,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": "seed-refused"},
        )
    assert info.value.body["param"] == "seed"  # type: ignore[index]
    assert info.value.body["code"] == "unsupported_parameter"  # type: ignore[index]
    assert mock.requests == []
    r = oai.chat.completions.create(
        model="loose/claude-x",
        seed=7,
        messages=[{"role": "user", "content": "dropped"}],
        extra_headers={"x-request-id": "seed-dropped"},
    )
    assert r.choices[0].message.content == "dropped"
    assert "seed" not in mock.last_request.body
    rows = logged(gw, "seed-refused", "seed-dropped")
    assert list(rows) == ["seed-dropped"] and rows["seed-dropped"]["status"] == 200


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Behaviour(status=429, headers={"retry-after": "3"}), openai.RateLimitError),
        # Anthropic refusing llmrelay's key is not the client's key being bad (issue 8).
        (Behaviour(status=401), openai.InternalServerError),
        (Behaviour(status=529), openai.InternalServerError),
    ],
)
def test_openai_sdk_upstream_errors(
    oai: openai.OpenAI, mock: MockUpstream, behaviour: Behaviour, error: type[Exception]
) -> None:
    mock.script(behaviour)
    with pytest.raises(error) as info:
        oai.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    exc: Any = info.value
    assert exc.status_code == (502 if behaviour.status == 401 else behaviour.status)
    assert set(exc.body) == {"message", "type", "param", "code"}
    if behaviour.status == 429:
        assert exc.response.headers["retry-after"] == "3"


def test_openai_sdk_error_mid_stream(oai: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(error_after_chunks=4))  # start, block start, ping, "a", error
    stream = oai.chat.completions.create(
        model="claude-sonnet", messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    seen = ""
    with pytest.raises(openai.APIError, match="Overloaded"):
        for chunk in stream:
            seen += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert seen == "a"


# -- the anthropic SDK → /v1/messages ------------------------------------------------------


@pytest.mark.parametrize("model", ["up/gpt-4o", "claude-sonnet"])
def test_messages_non_stream(claude: anthropic.Anthropic, mock: MockUpstream, model: str) -> None:
    m = claude.messages.create(
        model=model,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "hello claude"}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert m.type == "message" and m.role == "assistant"
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == "hello claude"  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == 5 and m.usage.output_tokens == 2
    sent = mock.last_request
    if model.startswith("up/"):
        assert sent.path == "/v1/chat/completions"
        assert sent.body["messages"][0] == {"role": "system", "content": "You are terse."}
    else:  # passed through: the client's body and beta flags, the route's model
        assert sent.path == "/v1/messages"
        assert sent.body == {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "hello claude"}],
        }
        assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
        assert sent.headers["x-api-key"] == "sk-ant-upstream-1234"


@pytest.mark.parametrize("model", ["up/gpt-4o", "claude-sonnet"])
def test_messages_stream(claude: anthropic.Anthropic, mock: MockUpstream, model: str) -> None:
    with claude.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "streaming is fun"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streaming is fun"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 3 and final.usage.output_tokens == 3


@pytest.mark.parametrize("model", ["up/gpt-4o", "claude-sonnet"])
def test_messages_tools_multi_turn(
    claude: anthropic.Anthropic, mock: MockUpstream, model: str
) -> None:
    messages: list[Any] = [{"role": "user", "content": "call the tool please"}]
    first = claude.messages.create(
        model=model, max_tokens=64, messages=messages, tools=[CLAUDE_WEATHER]
    )  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather"
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rainy"}],
        },
    ]
    with claude.messages.stream(
        model=model, max_tokens=64, messages=messages, tools=[CLAUDE_WEATHER]
    ) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "rainy"  # type: ignore[union-attr]


def test_messages_streamed_tool_use(claude: anthropic.Anthropic, mock: MockUpstream) -> None:
    with claude.messages.stream(
        model="up/gpt-4o",
        max_tokens=64,
        messages=[{"role": "user", "content": "tool please"}],
        tools=[CLAUDE_WEATHER],
    ) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].name == "get_weather"
    sent = mock.last_request.body
    assert sent["tools"] == [WEATHER] and sent["max_tokens"] == 64


def test_messages_errors_in_anthropic_shape(
    gw: GatewayProcess, claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "unknown model: no-such-model"},
    }
    r = httpx.post(
        gw.url + "/v1/messages",
        headers={"x-api-key": "sk-nope"},
        json={
            "model": "claude-sonnet",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    mock.script(Behaviour(status=529))
    with pytest.raises(anthropic.APIStatusError) as over:
        claude.messages.create(
            model="up/gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert over.value.status_code == 529
    assert over.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert mock.requests[-1].path == "/v1/chat/completions"


@pytest.mark.parametrize("model", ["up/gpt-4o", "claude-sonnet"])
def test_messages_error_mid_stream(
    claude: anthropic.Anthropic, mock: MockUpstream, model: str
) -> None:
    if model.startswith("up/"):
        mock.script(Behaviour(drop_after_chunks=2))
    else:
        mock.script(Behaviour(error_after_chunks=3, error_type="overloaded_error"))
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        claude.messages.stream(
            model=model,
            max_tokens=64,
            messages=[{"role": "user", "content": "a b c d e f"}],
        ) as stream,
    ):
        for _ in stream:
            pass
    body: Any = info.value.body
    assert body["type"] == "error"
    expected = "api_error" if model.startswith("up/") else "overloaded_error"
    assert body["error"]["type"] == expected


def test_messages_usage_is_logged(
    gw: GatewayProcess, claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError):  # rejected before any provider: no row
        claude.messages.create(
            model="claude-sonnet",
            max_tokens=0,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-request-id": "msg-rejected"},
        )
    claude.messages.create(
        model="claude-sonnet",
        max_tokens=9,
        messages=[{"role": "user", "content": "count these four words"}],
        extra_headers={"x-request-id": "msg-native"},
    )
    with claude.messages.stream(
        model="up/gpt-4o",
        max_tokens=9,
        messages=[{"role": "user", "content": "two words"}],
        extra_headers={"x-request-id": "msg-translated"},
    ) as s:
        s.until_done()
    rows = logged(gw, "msg-rejected", "msg-native", "msg-translated")
    assert set(rows) == {"msg-native", "msg-translated"}
    assert [
        (r["route"], r["provider"], r["stream"], r["usage"]["prompt_tokens"])
        for r in (rows["msg-native"], rows["msg-translated"])
    ] == [("/v1/messages", "claude", False, 4), ("/v1/messages", "up", True, 2)]
    assert "sk-ant-upstream" not in json.dumps(rows)


def test_messages_to_anthropic_through_both_translations(
    claude: anthropic.Anthropic, mock: MockUpstream
) -> None:
    """A route that overrides parameters gets the translated path even to Anthropic:
    Anthropic → OpenAI → Anthropic on the way in, and back on the way out."""
    route = json.dumps(
        {
            "provider": "claude",
            "model": "claude-sonnet-4-5",
            "override_params": {"temperature": 0.25},
        }
    )
    headers = {"x-llmrelay-config": route}
    messages: list[Any] = [{"role": "user", "content": "use the tool in Oslo"}]
    first = claude.messages.create(
        model="any",
        max_tokens=64,
        messages=messages,
        tools=[CLAUDE_WEATHER],  # type: ignore[list-item]
        extra_headers=headers,
    )
    use = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.input == {"city": "use the tool in Oslo"}
    sent = mock.last_request.body
    assert sent["temperature"] == 0.25 and sent["tools"] == [CLAUDE_WEATHER]
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "cold"}],
        },
    ]
    with claude.messages.stream(
        model="any",
        max_tokens=64,
        messages=messages,
        tools=[CLAUDE_WEATHER],  # type: ignore[list-item]
        extra_headers=headers,
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "cold"  # type: ignore[union-attr]
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == 1
    assert mock.last_request.body["messages"][2]["content"][0]["type"] == "tool_result"
