"""The official ``openai`` SDK through llmrelay to each native provider's mock.

One gateway process fronts Gemini, Vertex AI (service-account tokens from the mock's
token endpoint), Bedrock (SigV4 checked by the mock, ConverseStream as AWS event
stream), Azure OpenAI and Ollama, all served by the real mock upstream on loopback.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.native_providers import CHAT_MODELS, native_providers
from tests.sdk_streams import read_chat_stream

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
                "additionalProperties": False,
            },
        },
    }
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
NATIVE = ["gemini", "vertex", "bedrock"]


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("e2e-native")
    providers = native_providers(upstream, directory)
    providers.append(
        {**providers[2], "name": "bedrock-badkey", "aws_secret_access_key": "not-the-secret"}
    )
    providers.append({**providers[2], "name": "bedrock-lenient", "drop_params": True})
    proc = GatewayProcess(directory, {"providers": providers})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.create_key("native"), max_retries=0)
    yield c
    c.close()


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_non_stream(client: openai.OpenAI, mock: MockUpstream, provider: str) -> None:
    r = client.chat.completions.create(
        model=CHAT_MODELS[provider],
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}],
    )
    assert r.choices[0].message.content == "say hi"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == 2
    assert r.usage.total_tokens == r.usage.prompt_tokens + 2
    sent = json.dumps(mock.last_request.body)
    assert "be brief" in sent  # the system prompt reached the provider in its own form


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_stream_with_usage(client: openai.OpenAI, mock: MockUpstream, provider: str) -> None:
    stream = client.chat.completions.create(
        model=CHAT_MODELS[provider],
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = read_chat_stream(stream)
    assert text == "one two three"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 3


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_tools(client: openai.OpenAI, mock: MockUpstream, provider: str) -> None:
    messages: Any = [{"role": "user", "content": "use the tool"}]
    r = client.chat.completions.create(model=CHAT_MODELS[provider], messages=messages, tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert isinstance(args, dict)
    # Stream the same call: arguments arrive as deltas the client accumulates.
    stream = client.chat.completions.create(
        model=CHAT_MODELS[provider], messages=messages, tools=TOOLS, stream=True
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert name == "lookup" and json.loads(arguments) == args and finish == "tool_calls"
    if provider in NATIVE:  # the tool result goes back in the provider's own shape
        messages += [
            r.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"meaning": 42}'},
        ]
        done = client.chat.completions.create(
            model=CHAT_MODELS[provider], messages=messages, tools=TOOLS
        )
        assert "42" in (done.choices[0].message.content or "")
        assert done.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("provider", NATIVE)
def test_images_inline_and_url(client: openai.OpenAI, mock: MockUpstream, provider: str) -> None:
    content: Any = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    r = client.chat.completions.create(
        model=CHAT_MODELS[provider], messages=[{"role": "user", "content": content}]
    )
    assert r.choices[0].message.content == "what is this"
    assert PNG in json.dumps(mock.last_request.body)
    content[1] = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=CHAT_MODELS[provider], messages=[{"role": "user", "content": content}]
        )
    assert "does not fetch image URLs" in bad.value.message
    assert bad.value.body["param"] == "messages[0].content[1].image_url"  # type: ignore[index]


def test_response_format_and_unsupported_params(client: openai.OpenAI, mock: MockUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": ["integer", "null"]}},
        "additionalProperties": False,
    }
    client.chat.completions.create(
        model=CHAT_MODELS["gemini"],
        messages=[{"role": "user", "content": "json"}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        seed=7,
        temperature=0.2,
        max_tokens=50,
        stop=["END"],
    )
    config = mock.last_request.body["generationConfig"]
    assert config == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "seed": 7,
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"n": {"type": "INTEGER", "nullable": True}},
        },
    }
    calls = len(mock.requests)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=CHAT_MODELS["bedrock"], seed=7, messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body["param"] == "seed"  # type: ignore[index]
    assert "not supported by provider bedrock" in bad.value.message
    assert len(mock.requests) == calls  # refused before any upstream call
    r = client.chat.completions.create(
        model="bedrock-lenient/anthropic.claude-3-haiku-20240307-v1:0",
        seed=7,
        messages=[{"role": "user", "content": "x"}],
    )
    assert r.choices[0].message.content == "x" and "seed" not in mock.last_request.body


def test_max_tokens_maps_to_length(client: openai.OpenAI, mock: MockUpstream) -> None:
    for provider in NATIVE:
        r = client.chat.completions.create(
            model=CHAT_MODELS[provider],
            max_tokens=2,
            messages=[{"role": "user", "content": "one two three four"}],
        )
        assert r.choices[0].finish_reason == "length", provider
        assert r.choices[0].message.content == "one two"


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_rate_limit_passes_retry_after(
    client: openai.OpenAI, mock: MockUpstream, provider: str
) -> None:
    mock.script(Behaviour(status=429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(
            model=CHAT_MODELS[provider], messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("provider", "status", "error"),
    [
        ("gemini", 403, openai.PermissionDeniedError),
        ("gemini", 404, openai.NotFoundError),
        # A provider's 401 refuses llmrelay's credentials, not the client's: a 502 (issue 8).
        ("vertex", 500, openai.InternalServerError),
        ("bedrock", 401, openai.InternalServerError),
        ("bedrock", 403, openai.PermissionDeniedError),
        ("bedrock", 404, openai.NotFoundError),
        ("bedrock", 503, openai.InternalServerError),
        ("azure", 401, openai.InternalServerError),
    ],
)
def test_errors_keep_their_status(
    client: openai.OpenAI, mock: MockUpstream, provider: str, status: int, error: type[Exception]
) -> None:
    mock.script(Behaviour(status=status))
    with pytest.raises(error):
        client.chat.completions.create(
            model=CHAT_MODELS[provider], messages=[{"role": "user", "content": "x"}]
        )


def test_bad_aws_secret_is_502_upstream_authentication_failed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(
            model="bedrock-badkey/anthropic.claude-3-haiku-20240307-v1:0",
            messages=[{"role": "user", "content": "x"}],
        )
    assert exc.value.status_code == 502 and exc.value.code == "upstream_authentication_failed"
    assert "signature we calculated does not match" in exc.value.message


@pytest.mark.parametrize("provider", NATIVE)
def test_mid_stream_error_becomes_error_event(
    client: openai.OpenAI, mock: MockUpstream, provider: str
) -> None:
    mock.script(Behaviour(error_after_chunks=2))
    stream = client.chat.completions.create(
        model=CHAT_MODELS[provider],
        messages=[{"role": "user", "content": "a b c d e f"}],
        stream=True,
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


@pytest.mark.parametrize("provider", NATIVE)
def test_cut_stream_ends_with_error(
    gw: GatewayProcess, client: openai.OpenAI, mock: MockUpstream, provider: str
) -> None:
    mock.script(Behaviour(drop_after_chunks=2))
    r = httpx.post(
        gw.base_url + "/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {client.api_key}"},
        json={
            "model": CHAT_MODELS[provider],
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d e f"}],
        },
    )
    events = [e for e in r.text.split("\n\n") if e.startswith("data: ")]
    assert "[DONE]" not in events[-1]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_unreachable"


@pytest.mark.parametrize(
    ("model", "inputs"),
    [
        ("gemini/text-embedding-004", "hello"),
        ("gemini/text-embedding-004", ["hello", "world"]),
        ("vertex/text-embedding-004", ["hello", "world"]),
        ("bedrock/amazon.titan-embed-text-v2:0", "hello"),
        ("bedrock/cohere.embed-english-v3", ["hello", "world"]),
        ("azure/embed-prod", ["hello", "world"]),
    ],
)
def test_embeddings(
    client: openai.OpenAI, mock: MockUpstream, model: str, inputs: str | list[str]
) -> None:
    r = client.embeddings.create(model=model, input=inputs)  # the SDK asks for base64
    count = 1 if isinstance(inputs, str) else len(inputs)
    assert [d.index for d in r.data] == list(range(count))
    assert all(len(d.embedding) > 0 and isinstance(d.embedding[0], float) for d in r.data)
    floats = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert [d.embedding for d in floats.data] == [d.embedding for d in r.data]


def test_model_lists(gw: GatewayProcess, client: openai.OpenAI) -> None:
    def ids(provider: str) -> set[str]:
        r = httpx.get(
            f"{gw.base_url}/models?provider={provider}&refresh=true",
            headers={"authorization": f"Bearer {client.api_key}"},
        )
        return {m["id"] for m in r.json()["data"]}

    assert {"gemini/gemini-2.5-flash", "gemini/text-embedding-004"} <= ids("gemini")
    assert "gemini/aqa" not in ids("gemini")  # neither generates nor embeds
    assert "vertex/gemini-2.5-pro" in ids("vertex")
    bedrock = ids("bedrock")
    assert "bedrock/anthropic.claude-3-haiku-20240307-v1:0" in bedrock
    assert "bedrock/anthropic.claude-3-7-sonnet-20250219-v1:0" not in bedrock  # profile only
    assert ids("azure") == {"azure/gpt-4o-prod", "azure/embed-prod"}
    assert "ollama/gpt-4o" in ids("ollama")


@pytest.mark.parametrize("provider", NATIVE)
def test_other_front_doors_reach_native_providers(
    gw: GatewayProcess, client: openai.OpenAI, provider: str
) -> None:
    """``/v1/messages`` (anthropic SDK) and ``/v1/responses`` translate into the same
    chat path, so they reach every native provider too."""
    import anthropic

    with anthropic.Anthropic(base_url=gw.url, api_key=client.api_key, max_retries=0) as claude:
        message = claude.messages.create(
            model=CHAT_MODELS[provider],
            max_tokens=50,
            messages=[{"role": "user", "content": "hi claude"}],
        )
        assert message.content[0].text == "hi claude"  # type: ignore[union-attr]
        with claude.messages.stream(
            model=CHAT_MODELS[provider],
            max_tokens=50,
            messages=[{"role": "user", "content": "a b c"}],
        ) as s:
            assert s.get_final_text() == "a b c"
    response = client.responses.create(model=CHAT_MODELS[provider], input="hi responses")
    assert response.output_text == "hi responses"
