"""Guardrails on answers passed through untranslated: Anthropic behind ``/v1/messages``
and OpenAI behind ``/v1/responses``, against the mock upstream server, with the SDKs.

The stream steps see the provider's own events here; the client must still get its
originals back, redacted output, a withheld answer, and events that add up (Responses'
``sequence_number`` counting by one, ``*.done`` texts equal to the deltas sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.mock_upstream import MockUpstream
from llmrelay.plugins.chain import PluginSelector

EMAIL = "alice.nguyen@example.com"
CLAUDE = "claude/claude-haiku-4-5"
GPT = "oai/gpt-4o-mini"


class Env:
    gateway: Gateway

    def __init__(self, http: httpx2.AsyncClient, key: str, upstream: MockUpstream) -> None:
        self.http, self.key, self.upstream = http, key, upstream

    def headers(self, config: dict[str, Any]) -> dict[str, str]:
        return {"x-llmrelay-config": orjson.dumps(config).decode()}

    def anthropic(self, config: dict[str, Any]) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url="http://gateway",
            api_key=self.key,
            http_client=self.http,
            max_retries=0,
            default_headers=self.headers(config),
        )

    def openai(self, config: dict[str, Any], http: httpx.AsyncClient) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url="http://gateway/v1",
            api_key=self.key,
            http_client=http,
            max_retries=0,
            default_headers=self.headers(config),
        )


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Env, httpx.AsyncClient]]:
    directory: Path = tmp_path_factory.mktemp("guardrails-pass")
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{directory / 'gw.db'}",
            "log_file": "none",
            "auto_providers": False,
            "provider_reload_interval": 0,
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
            ],
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    key, _ = await create_key(gateway.services.sessions, "guardrails-pass")
    async with (
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http2,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http,
    ):
        env = Env(http2, key, upstream)
        env.gateway = gateway
        yield env, http
    await gateway.shutdown()


@pytest.fixture
def env(gw: tuple[Env, httpx.AsyncClient]) -> Env:
    gw[0].upstream.reset()
    return gw[0]


@pytest.fixture
def http(gw: tuple[Env, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gw[1]


RESTORE = {
    "guardrails": {"input": [{"type": "pii_detection", "action": "redact", "restore": True}]}
}
REDACT_OUT = {"guardrails": {"output": [{"type": "pii_detection", "action": "redact"}]}}
DENY_OUT = {"guardrails": {"output": [{"type": "pii_detection", "action": "deny"}]}}
ASK = f"write to {EMAIL} please"


async def test_messages_passthrough_restores_in_json_and_stream(env: Env) -> None:
    client = env.anthropic(RESTORE)
    message = await client.messages.create(
        model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": ASK}]
    )
    assert message.content[0].text == ASK  # type: ignore[union-attr]
    assert EMAIL not in orjson.dumps(env.upstream.last_request.body).decode()
    async with client.messages.stream(
        model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": ASK}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == ASK and final.content[0].text == ASK  # type: ignore[union-attr]


async def test_messages_passthrough_output_redact_and_deny(env: Env) -> None:
    seen = "card 4111 1111 1111 1111 and phone +1 415-555-0132 end"
    async with env.anthropic(REDACT_OUT).messages.stream(
        model=CLAUDE, max_tokens=80, messages=[{"role": "user", "content": seen}]
    ) as s:
        text = "".join([t async for t in s.text_stream])
    assert text == "card [CARD_1] and phone [PHONE_1] end"
    with pytest.raises(anthropic.APIStatusError) as denied:
        async with env.anthropic(DENY_OUT).messages.stream(
            model=CLAUDE, max_tokens=80, messages=[{"role": "user", "content": seen}]
        ) as s:
            async for _ in s.text_stream:
                pass
    assert "CARD" in str(denied.value) and "4111" not in str(denied.value)


async def test_responses_passthrough_restores_with_consistent_events(
    env: Env,
    http: httpx.AsyncClient,
) -> None:
    client = env.openai(RESTORE, http)
    response = await client.responses.create(model=GPT, input=ASK)
    assert response.output_text == ASK
    assert EMAIL not in orjson.dumps(env.upstream.last_request.body).decode()
    stream = await client.responses.create(model=GPT, input=ASK, stream=True)
    events = [e async for e in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = [e.text for e in events if e.type == "response.output_text.done"]
    completed = [e for e in events if e.type == "response.completed"]
    assert deltas == ASK and done == [ASK]
    assert completed and completed[0].response.output_text == ASK
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def test_responses_passthrough_output_redact_holds_back_and_renumbers(
    env: Env,
    http: httpx.AsyncClient,
) -> None:
    seen = "card 4111 1111 1111 1111 end"
    stream = await env.openai(REDACT_OUT, http).responses.create(model=GPT, input=seen, stream=True)
    events = [e async for e in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "card [CARD_1] end"
    assert [e.text for e in events if e.type == "response.output_text.done"] == [deltas]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def test_content_safety_by_webhook_and_by_provider_on_passed_through_streams(
    env: Env,
    http: httpx.AsyncClient,
) -> None:
    services = env.gateway.services
    saved = services.plugins
    hook = env.upstream.base_url + "/moderations"  # speaks the documented schema
    services.plugins = PluginSelector(
        saved.factories,
        saved.builtins,
        {
            "guardrails": {
                "input": [{"type": "content_safety", "threshold": 0.9, "webhook": hook}],
                "output": [{"type": "content_safety", "threshold": 0.8, "provider": "oai"}],
            }
        },
    )
    try:
        client = env.anthropic({})
        with pytest.raises(anthropic.BadRequestError) as denied:
            await client.messages.create(
                model=CLAUDE,
                max_tokens=50,
                messages=[{"role": "user", "content": "write a hateword"}],
            )
        assert "hate 0.95" in str(denied.value)
        sent = env.upstream.last_request
        assert sent.path == "/v1/moderations" and sent.body["stage"] == "input"
        with pytest.raises(anthropic.APIStatusError) as withheld:
            async with client.messages.stream(
                model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "you idiot"}]
            ) as stream:  # 0.85 >= 0.8
                async for _ in stream.text_stream:
                    pass
        assert "content safety" in str(withheld.value)
        stream = await env.openai({}, http).responses.create(
            model=GPT, input="calm words", stream=True
        )
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        assert text == "calm words"
    finally:
        services.plugins = saved
