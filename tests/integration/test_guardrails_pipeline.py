"""Guardrails through the real HTTP surface, with the official SDKs, on every endpoint.

A real gateway runs in process (``httpx.ASGITransport``) with the built-in mock
provider, which echoes the last user message: what the model was sent comes back in
the answer, so input redaction, output checks and restore are all visible to the
client. The guardrails are selected the way seed 004 does it, by a route config sent in
the ``x-llmrelay-config`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest
from sqlalchemy import select

from llmrelay.app import Gateway
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.plugins.chain import PluginSelector
from llmrelay.providers.mock import CannedResponse
from llmrelay.sse import DONE, EventSplitter, encode_json, event_data
from llmrelay.store.rows import log_line
from llmrelay.store.schema import RequestRow, ResponseRow
from llmrelay.telemetry.interaction import Interaction

EMAIL = "alice.nguyen@example.com"
SEED = "Nhân viên Nguyễn Văn A, CMND 123456789"


class _Recording:
    """Records what the model was sent; streams may be re-split one character per event,
    so every placeholder and entity crosses chunk boundaries."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []
        self.split = False

    async def send(self, call: Any, **kw: Any) -> Any:
        self.bodies.append(call.body)
        resp = await self.inner.send(call, **kw)
        if not (kw.get("stream") and self.split and resp.status == 200):
            return resp
        events: list[bytes] = []
        for event in EventSplitter().feed(await resp.read()):
            data = event_data(event)
            obj = orjson.loads(data) if data and data != b"[DONE]" else None
            choices = obj.get("choices") if isinstance(obj, dict) else None
            content = choices[0]["delta"].get("content") if choices else None
            if not isinstance(content, str) or len(content) < 2:
                events.append(event)
                continue
            for ch in content:
                choices[0]["delta"]["content"] = ch
                events.append(encode_json(obj))
        return CannedResponse(200, events, "text/event-stream")


class Env:
    def __init__(
        self,
        gateway: Gateway,
        http: httpx.AsyncClient,
        http2: httpx2.AsyncClient,
        key: str,
        upstream: _Recording,
    ) -> None:
        self.gateway, self.http, self.key, self.upstream = gateway, http, key, upstream
        self.http2 = http2  # the anthropic SDK's own httpx fork

    def openai(self, config: dict[str, Any]) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url="http://gateway/v1",
            api_key=self.key,
            http_client=self.http,
            max_retries=0,
            default_headers={"x-llmrelay-config": orjson.dumps(config).decode()},
        )

    def anthropic(self, config: dict[str, Any]) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url="http://gateway",
            api_key=self.key,
            http_client=self.http2,
            max_retries=0,
            default_headers={"x-llmrelay-config": orjson.dumps(config).decode()},
        )

    def sent(self) -> bytes:
        """What the model was sent last."""
        return self.upstream.bodies[-1]


@contextlib.asynccontextmanager
async def started_env(directory: Path, key_name: str, **overrides: Any) -> AsyncIterator[Env]:
    """An in-process gateway on SQLite in ``directory`` with the mock's transport
    recorded, a key, and clients of both httpx versions (for the two SDKs)."""
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{directory / 'gw.db'}",
            "log_file": "none",
            "auto_providers": False,
            "provider_reload_interval": 0,
            **overrides,
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    key, _ = await create_key(gateway.services.sessions, key_name)
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http2,
    ):
        mock = gateway.services.registry.get("mock")
        assert mock is not None
        upstream = _Recording(mock.transport)
        mock.transport = upstream  # type: ignore[assignment]
        yield Env(gateway, http, http2, key, upstream)
    await gateway.shutdown()


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    directory: Path = tmp_path_factory.mktemp("guardrails")
    async with started_env(directory, "guardrails", log_bodies=True) as env:
        yield env


@pytest.fixture(autouse=True)
def _whole_chunks(env: Env) -> None:
    env.upstream.split = False


def _guard(stage: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"guardrails": {stage: [{"type": "pii_detection", "action": action, **extra}]}}


RESTORE = _guard("input", "redact", restore=True)
USER = [{"role": "user", "content": f"mail {EMAIL} today"}]


async def test_seed_004_example_reaches_the_model_redacted(env: Env) -> None:
    client = env.openai(_guard("input", "redact", placeholder="redacted"))
    raw = await client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": SEED}]
    )
    answer = raw.parse()
    want = "Nhân viên [NAME_REDACTED], CMND [CMND_REDACTED]"
    assert answer.choices[0].message.content == want  # the model echoed what it saw
    assert want.encode() in env.sent() and b"123456789" not in env.sent()
    assert raw.headers["x-llmrelay-guardrails"] == "input.redact.CMND=1, input.redact.NAME=1"
    spent = float(raw.headers["x-llmrelay-guardrails-ms"])
    assert spent > 0
    # The guardrails' part of the gateway's own time, beside the overhead header.
    assert raw.headers["x-llmrelay-overhead-breakdown"] == f"guardrails={spent:.3f}"
    assert spent <= float(raw.headers["x-llmrelay-overhead-ms"])


async def test_input_deny_is_a_400_in_each_endpoint_shape_with_no_upstream_call(
    env: Env,
) -> None:
    config = _guard("input", "deny")
    before = len(env.upstream.bodies)
    with pytest.raises(openai.BadRequestError) as chat:
        await env.openai(config).chat.completions.create(model="mock/echo", messages=USER)
    error = chat.value.body
    assert isinstance(error, dict) and error["code"] == "guardrail_denied"
    assert chat.value.response.headers["x-llmrelay-guardrails"] == "input.deny.EMAIL=1"
    assert "EMAIL" in error["message"] and EMAIL not in error["message"]
    with pytest.raises(anthropic.BadRequestError) as messages:
        await env.anthropic(config).messages.create(model="mock/echo", max_tokens=50, messages=USER)  # type: ignore[arg-type]
    assert "EMAIL" in str(messages.value) and EMAIL not in str(messages.value)
    with pytest.raises(openai.BadRequestError):
        await env.openai(config).responses.create(model="mock/echo", input=USER[0]["content"])
    with pytest.raises(openai.BadRequestError):
        await env.openai(config).embeddings.create(model="mock/echo", input=[EMAIL])
    with pytest.raises(openai.BadRequestError):  # streamed: refused before the stream opens
        await env.openai(config).chat.completions.create(
            model="mock/echo", messages=USER, stream=True
        )
    assert len(env.upstream.bodies) == before
    metrics = env.gateway.services.metrics.render().decode()
    assert (
        'llmrelay_guardrail_findings_total{action="deny",entity="EMAIL",'
        'guardrail="input_0_pii",stage="input"} 5.0'
    ) in metrics  # no rows: still counted


async def test_input_redact_on_every_endpoint(env: Env) -> None:
    config = _guard("input", "redact")
    chat = await env.openai(config).chat.completions.create(model="mock/echo", messages=USER)
    assert chat.choices[0].message.content == "mail [EMAIL_1] today"
    message = await env.anthropic(config).messages.create(
        model="mock/echo",
        max_tokens=50,
        system=f"the user is {EMAIL}",
        messages=[{"role": "user", "content": [{"type": "text", "text": USER[0]["content"]}]}],
    )
    assert message.content[0].text == "mail [EMAIL_1] today"  # type: ignore[union-attr]
    assert EMAIL.encode() not in env.sent()
    response = await env.openai(config).responses.create(
        model="mock/echo", instructions=f"reply to {EMAIL}", input=USER[0]["content"]
    )
    assert response.output_text == "mail [EMAIL_1] today"
    assert EMAIL.encode() not in env.sent()
    await env.openai(config).embeddings.create(model="mock/echo", input=[f"x {EMAIL}", "y"])
    assert EMAIL.encode() not in env.sent() and b"[EMAIL_1]" in env.sent()


async def test_restore_puts_the_originals_back_for_the_client_only(env: Env) -> None:
    chat = await env.openai(RESTORE).chat.completions.create(model="mock/echo", messages=USER)
    assert chat.choices[0].message.content == f"mail {EMAIL} today"
    assert EMAIL.encode() not in env.sent()
    message = await env.anthropic(RESTORE).messages.create(
        model="mock/echo", max_tokens=50, messages=USER
    )  # type: ignore[arg-type]
    assert message.content[0].text == f"mail {EMAIL} today"  # type: ignore[union-attr]
    response = await env.openai(RESTORE).responses.create(
        model="mock/echo", instructions=f"reply to {EMAIL}", input=USER[0]["content"]
    )
    assert response.output_text == f"mail {EMAIL} today"
    assert response.instructions == f"reply to {EMAIL}"  # the echo has the original too
    assert EMAIL.encode() not in env.sent()


async def _chat_stream(client: openai.AsyncOpenAI, **kw: Any) -> str:
    stream = await client.chat.completions.create(model="mock/echo", stream=True, **kw)
    text = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    return text


@pytest.mark.parametrize("split", [False, True], ids=["word-chunks", "char-chunks"])
async def test_streams_restore_placeholders_across_chunk_boundaries(
    env: Env,
    split: bool,
) -> None:
    env.upstream.split = split
    two = [{"role": "user", "content": f"{EMAIL} and bob@example.org, again {EMAIL}"}]
    assert await _chat_stream(env.openai(RESTORE), messages=two) == two[0]["content"]
    assert EMAIL.encode() not in env.sent()
    async with env.anthropic(RESTORE).messages.stream(
        model="mock/echo", max_tokens=50, messages=two
    ) as stream:  # type: ignore[arg-type]
        text = "".join([t async for t in stream.text_stream])
    assert text == two[0]["content"]
    stream = await env.openai(RESTORE).responses.create(
        model="mock/echo", stream=True, input=two[0]["content"]
    )
    deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas) == two[0]["content"]


@pytest.mark.parametrize("split", [False, True], ids=["word-chunks", "char-chunks"])
async def test_output_redact_in_json_and_streams(env: Env, split: bool) -> None:
    env.upstream.split = split
    config = _guard("output", "redact")
    seen = [{"role": "user", "content": f"card 4111 1111 1111 1111, {EMAIL}, ts 2024-05-01"}]
    want = "card [CARD_1], [EMAIL_1], ts 2024-05-01"
    chat = await env.openai(config).chat.completions.create(model="mock/echo", messages=seen)
    assert chat.choices[0].message.content == want
    assert await _chat_stream(env.openai(config), messages=seen) == want
    async with env.anthropic(config).messages.stream(
        model="mock/echo", max_tokens=50, messages=seen
    ) as stream:  # type: ignore[arg-type]
        assert "".join([t async for t in stream.text_stream]) == want


async def test_output_deny_withholds_the_answer(env: Env) -> None:
    config = _guard("output", "deny")
    with pytest.raises(openai.BadRequestError) as denied:
        await env.openai(config).chat.completions.create(model="mock/echo", messages=USER)
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["code"] == "guardrail_output_denied"
    assert denied.value.response.headers["x-llmrelay-guardrails"] == "output.deny.EMAIL=1"
    env.upstream.split = True
    long = [{"role": "user", "content": "word " * 60 + EMAIL}]  # longer than the window
    resp = await env.http.post(
        "/v1/chat/completions",
        json={"model": "mock/echo", "messages": long, "stream": True},
        headers={
            "authorization": f"Bearer {env.key}",
            "x-llmrelay-config": orjson.dumps(config).decode(),
        },
    )
    assert resp.status_code == 200
    assert DONE not in resp.content and EMAIL.encode() not in resp.content
    assert b"guardrail_output_denied" in resp.content
    text = "".join(
        orjson.loads(d)["choices"][0]["delta"].get("content") or ""
        for d in (event_data(e) for e in EventSplitter().feed(resp.content))
        if d and b'"choices"' in d
    )
    assert text.startswith("word word") and "alice" not in text  # what came before went out


async def test_flag_passes_unchanged_and_records(env: Env) -> None:
    raw = await env.openai(_guard("input", "flag")).chat.completions.with_raw_response.create(
        model="mock/echo", messages=USER
    )
    assert raw.parse().choices[0].message.content == USER[0]["content"]
    assert raw.headers["x-llmrelay-guardrails"] == "input.flag.EMAIL=1"


async def test_tool_call_arguments_are_restored(env: Env) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "send",
                "parameters": {
                    "type": "object",
                    "properties": {"to": {"const": "[EMAIL_1]"}},
                    "required": ["to"],
                },
            },
        }
    ]
    kw: dict[str, Any] = {"messages": USER, "tools": tools, "tool_choice": "required"}
    chat = await env.openai(RESTORE).chat.completions.create(model="mock/echo", **kw)
    calls = chat.choices[0].message.tool_calls
    assert calls and orjson.loads(calls[0].function.arguments) == {"to": EMAIL}  # type: ignore[union-attr]
    env.upstream.split = True
    stream = await env.openai(RESTORE).chat.completions.create(model="mock/echo", stream=True, **kw)
    args = ""
    async for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += call.function.arguments or "" if call.function else ""
    assert orjson.loads(args) == {"to": EMAIL}


async def test_a_guardrail_that_raises_fails_closed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> list[Any]:
        raise RuntimeError("detector bug")

    monkeypatch.setattr("llmrelay.guardrails.scan.detect", broken)
    before = len(env.upstream.bodies)
    with pytest.raises(openai.InternalServerError) as failed:
        await env.openai(_guard("input", "redact")).chat.completions.create(
            model="mock/echo", messages=USER
        )
    assert isinstance(failed.value.body, dict) and failed.value.body["code"] == "guardrail_failed"
    assert len(env.upstream.bodies) == before
    allow = _guard("input", "redact", on_error="allow")
    chat = await env.openai(allow).chat.completions.create(model="mock/echo", messages=USER)
    assert chat.choices[0].message.content == USER[0]["content"]


async def test_a_bad_guardrails_block_names_the_field(env: Env) -> None:
    bad = {"guardrails": {"input": [{"type": "pii_detection", "acton": "deny"}]}}
    with pytest.raises(openai.BadRequestError) as refused:
        await env.openai(bad).chat.completions.create(model="mock/echo", messages=USER)
    assert "guardrails.input[0].acton" in str(refused.value)


async def test_rows_logs_and_metrics_hold_no_original(env: Env) -> None:
    services = env.gateway.services
    marker = "row-check-" + "x" * 8
    logged: list[Interaction] = []
    services.writer.observers.append(logged.extend)  # what the interaction log writes
    await env.openai(RESTORE).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": f"{marker} {EMAIL}"}]
    )
    for _ in range(200):
        async with services.sessions() as session:
            rows = (
                await session.execute(
                    select(RequestRow, ResponseRow).join(
                        ResponseRow, ResponseRow.id == RequestRow.id
                    )
                )
            ).all()
        mine = [r for r in rows if r[0].body and marker in r[0].body]
        if mine and services.writer.pending == 0:
            break
        await asyncio.sleep(0.05)
    request, response = mine[-1]
    assert EMAIL not in (request.body or "") and "[EMAIL_1]" in (request.body or "")
    assert EMAIL not in (response.body or "") and "[EMAIL_1]" in (response.body or "")
    found = request.attempts[-1]["guardrails"]["findings"]
    assert found[0]["entity"] == "EMAIL" and found[0]["count"] == 1
    assert EMAIL not in orjson.dumps(request.attempts).decode()
    metrics = services.metrics.render().decode()
    assert 'llmrelay_guardrail_findings_total{action="redact",entity="EMAIL"' in metrics
    assert EMAIL not in metrics
    services.writer.observers.remove(logged.extend)
    lines = [log_line(it) for it in logged if marker.encode() in (it.request_body or b"")]
    assert lines and all(EMAIL.encode() not in line for line in lines)
    assert b'"guardrails":{"findings"' in lines[-1]


async def test_a_header_config_may_not_bring_its_own_regex(env: Env) -> None:
    custom = _guard("input", "redact", custom=[{"name": "SLOW", "pattern": "^(a+)+$"}])
    with pytest.raises(openai.BadRequestError) as refused:
        await env.openai(custom).chat.completions.create(model="mock/echo", messages=USER)
    assert "only allowed in stored route configs" in str(refused.value)
    hook = {
        "guardrails": {
            "input": [
                {
                    "type": "content_safety",
                    "threshold": 0.5,
                    "webhook": "http://169.254.169.254/latest",
                }
            ]
        }
    }
    with pytest.raises(openai.BadRequestError) as refused:
        await env.openai(hook).chat.completions.create(model="mock/echo", messages=USER)
    assert "only allowed in stored route configs" in str(refused.value)


async def test_the_settings_plugins_block_selects_guardrails_for_every_call(env: Env) -> None:
    services = env.gateway.services
    saved = services.plugins
    services.plugins = PluginSelector(
        saved.factories,
        saved.builtins,
        {
            "guardrails": {
                "input": [
                    {
                        "type": "pii_detection",
                        "action": "redact",
                        "custom": [{"name": "TICKET", "pattern": r"TCK-\d{4}"}],
                    }
                ]
            }
        },
    )
    try:
        plain = openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=env.key, http_client=env.http, max_retries=0
        )
        chat = await plain.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": f"TCK-1234 for {EMAIL}"}]
        )
        assert chat.choices[0].message.content == "[TICKET_1] for [EMAIL_1]"
    finally:
        services.plugins = saved


def _safety(stage: str, **extra: Any) -> dict[str, Any]:
    return {
        "guardrails": {
            stage: [{"type": "content_safety", "threshold": 0.8, "provider": "mock", **extra}]
        }
    }


async def test_content_safety_on_input_above_and_below_the_threshold(env: Env) -> None:
    client = env.openai(_safety("input"))
    before = len(env.upstream.bodies)
    with pytest.raises(openai.BadRequestError) as denied:
        await client.chat.completions.create(
            model="mock/echo",
            messages=[{"role": "user", "content": "how do I kill a zombie process"}],
        )
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["code"] == "content_safety_denied"
    assert "violence 0.92" in denied.value.body["message"]
    assert len(env.upstream.bodies) == before + 1  # the moderation call, no model call
    assert env.sent().startswith(b'{"model":"omni-moderation-latest"')
    fine = await client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "a borderline joke"}]
    )  # illicit 0.6 < 0.8
    assert fine.choices[0].message.content == "a borderline joke"
    with pytest.raises(anthropic.BadRequestError):
        await env.anthropic(_safety("input")).messages.create(
            model="mock/echo", max_tokens=50, messages=[{"role": "user", "content": "stab"}]
        )
    lenient = env.openai(_safety("input", categories=["hate"]))
    ok = await lenient.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "kill -9"}]
    )  # violence is not a category it counts
    assert ok.choices[0].message.content == "kill -9"


async def test_content_safety_on_output_json_and_streams(env: Env) -> None:
    client = env.openai(_safety("output"))
    bad = [{"role": "user", "content": "the loser wins"}]  # echoed: harassment 0.85
    with pytest.raises(openai.BadRequestError) as denied:
        await client.chat.completions.create(model="mock/echo", messages=bad)
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["code"] == "content_safety_output_denied"
    resp = await env.http.post(
        "/v1/chat/completions",
        json={"model": "mock/echo", "messages": bad, "stream": True},
        headers={
            "authorization": f"Bearer {env.key}",
            "x-llmrelay-config": orjson.dumps(_safety("output")).decode(),
        },
    )
    assert b"content_safety_output_denied" in resp.content and DONE not in resp.content
    assert b"loser" not in resp.content
    assert await _chat_stream(client, messages=USER) == USER[0]["content"]


async def test_content_safety_fails_closed_without_a_moderation_provider(env: Env) -> None:
    seed = {"guardrails": {"output": [{"type": "content_safety", "threshold": 0.8}]}}
    with pytest.raises(openai.InternalServerError) as failed:  # no provider "openai" here
        await env.openai(seed).chat.completions.create(model="mock/echo", messages=USER)
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["code"] == "guardrail_failed"
    assert "no provider 'openai'" in failed.value.body["message"]


class StreamError(Exception):
    """A Responses stream's ``error`` event (the SDK yields it as an event)."""


async def _answer(env: Env, config: dict[str, Any], endpoint: str, stream: bool, text: str) -> str:
    """The answer's text on ``endpoint`` (chat, messages, responses) through its SDK."""
    messages = [{"role": "user", "content": text}]
    if endpoint == "chat":
        client = env.openai(config)
        if stream:
            return await _chat_stream(client, messages=messages)
        chat = await client.chat.completions.create(model="mock/echo", messages=messages)
        return chat.choices[0].message.content or ""
    if endpoint == "messages":
        claude = env.anthropic(config)
        if stream:
            async with claude.messages.stream(
                model="mock/echo", max_tokens=200, messages=messages
            ) as events:  # type: ignore[arg-type]
                return "".join([t async for t in events.text_stream])
        message = await claude.messages.create(model="mock/echo", max_tokens=200, messages=messages)  # type: ignore[arg-type]
        return message.content[0].text  # type: ignore[union-attr]
    client = env.openai(config)
    if stream:
        out = ""
        async for event in await client.responses.create(
            model="mock/echo", stream=True, input=text
        ):
            if event.type == "error":  # Responses streams end in an error event, no raise
                raise StreamError(f"{event.code}: {event.message}")
            if event.type == "response.output_text.delta":
                out += event.delta
        return out
    response = await client.responses.create(model="mock/echo", input=text)
    return response.output_text


ENDPOINTS = [
    (endpoint, stream) for endpoint in ("chat", "messages", "responses") for stream in (False, True)
]
ENDPOINT_IDS = [f"{e}-{'stream' if s else 'json'}" for e, s in ENDPOINTS]


@pytest.mark.parametrize(("endpoint", "stream"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_every_endpoint_output_redact_flag_and_deny(
    env: Env, endpoint: str, stream: bool
) -> None:
    env.upstream.split = stream
    text = f"card 4111 1111 1111 1111 for {EMAIL}"
    redacted = await _answer(env, _guard("output", "redact"), endpoint, stream, text)
    assert redacted == "card [CARD_1] for [EMAIL_1]"
    flag = {
        "guardrails": {
            s: [{"type": "pii_detection", "action": "flag"}] for s in ("input", "output")
        }
    }
    assert await _answer(env, flag, endpoint, stream, text) == text
    assert EMAIL.encode() in env.sent()  # flag: the model saw it as it was
    long = "word " * 60 + EMAIL  # past the window: the stream has begun when it is found
    errors: tuple[type[Exception], ...] = (openai.APIError, anthropic.APIError, StreamError)
    with pytest.raises(errors) as denied:
        await _answer(env, _guard("output", "deny"), endpoint, stream, long)
    assert "EMAIL" in str(denied.value) and EMAIL not in str(denied.value)
    with pytest.raises(errors):
        await _answer(env, _guard("input", "deny"), endpoint, stream, text)


async def test_output_guardrails_check_tool_call_arguments(env: Env) -> None:
    """The model's own tool-call arguments are answer text too: JSON and streamed."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "send",
                "parameters": {
                    "type": "object",
                    "properties": {"to": {"const": EMAIL}},
                    "required": ["to"],
                },
            },
        }
    ]
    kw: dict[str, Any] = {"messages": USER, "tools": tools, "tool_choice": "required"}
    config = _guard("output", "redact")
    chat = await env.openai(config).chat.completions.create(model="mock/echo", **kw)
    calls = chat.choices[0].message.tool_calls
    assert calls and orjson.loads(calls[0].function.arguments) == {"to": "[EMAIL_1]"}  # type: ignore[union-attr]
    env.upstream.split = True
    stream = await env.openai(config).chat.completions.create(model="mock/echo", stream=True, **kw)
    args = ""
    async for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += call.function.arguments or "" if call.function else ""
    assert orjson.loads(args) == {"to": "[EMAIL_1]"}
    with pytest.raises(openai.BadRequestError):
        await env.openai(_guard("output", "deny")).chat.completions.create(model="mock/echo", **kw)
