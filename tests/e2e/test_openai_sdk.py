"""The official ``openai`` SDK, unchanged, pointed at llmrelay."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.sdk_streams import read_chat_stream


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-openai"),
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                }
            ],
            "models": [{"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"}],
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.create_key("sdk"), max_retries=0)
    yield c
    c.close()


def test_non_stream(client: openai.OpenAI, mock: MockUpstream) -> None:
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say hi"}]
    )
    assert r.choices[0].message.content == "say hi"
    assert r.usage is not None and r.usage.total_tokens == 4


def test_stream(client: openai.OpenAI, mock: MockUpstream) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, _ = read_chat_stream(stream)
    assert text == "one two three"
    assert usage is not None and usage.completion_tokens == 3


def test_builtin_mock_provider(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "echo me"}]
    )
    assert r.choices[0].message.content == "echo me"
    chunks = list(
        client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "echo me"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo me"


def test_tools_pass_through(client: openai.OpenAI, mock: MockUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "use the tool"}],
        tools=tools,  # type: ignore[arg-type]
    )
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index]


def test_embeddings_and_models(client: openai.OpenAI) -> None:
    emb = client.embeddings.create(model="up/text-embedding-3-small", input="hello")
    assert len(emb.data) == 1 and len(emb.data[0].embedding) > 0
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "mock/echo"} <= ids


def test_errors_are_sdk_exceptions(
    gw: GatewayProcess, client: openai.OpenAI, mock: MockUpstream
) -> None:
    msgs = [{"role": "user", "content": "x"}]
    bad = openai.OpenAI(base_url=gw.base_url, api_key="sk-relay-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    assert auth.value.status_code == 401
    bad.close()
    with pytest.raises(openai.BadRequestError, match="unknown model: gpt-99"):
        client.chat.completions.create(model="gpt-99", messages=msgs)  # type: ignore[arg-type]
    mock.script(Behaviour(status=429, error_message="upstream says slow down"))
    with pytest.raises(openai.RateLimitError, match="upstream says slow down"):
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    mock.script(Behaviour(status=503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    mock.script(Behaviour(drop_after_chunks=2))
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=msgs,
            stream=True,  # type: ignore[arg-type]
        ):
            pass
