"""The response cache through the real HTTP surface, with the official SDKs, in process.

A real gateway runs in this process (``httpx.ASGITransport``) with the built-in mock
provider (OpenAI shape, every answer translated) and the mock upstream server behind an
Anthropic provider (``/v1/messages`` passed through) and an OpenAI provider
(``/v1/responses`` passed through). The cache is selected the way operators select it:
the settings' ``plugins`` block, a route config's ``cache`` block, a key's metadata.
"""

from __future__ import annotations

import asyncio
import uuid
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
from llmrelay.context import Call
from llmrelay.errors import PermissionDenied
from llmrelay.governance.keys import create_key
from llmrelay.mock_upstream import Behaviour, MockUpstream
from llmrelay.plugins.chain import Plugin, PluginSelector, StreamStep
from llmrelay.sse import EventSplitter, event_data
from llmrelay.store.schema import RequestRow, UsageRecord
from tests.sdk_streams import read_chat_stream


class Harness:
    def __init__(
        self,
        gateway: Gateway,
        http: httpx.AsyncClient,
        key: str,
        upstream: MockUpstream,
        http2: httpx2.AsyncClient,
    ) -> None:
        self.gateway, self.http, self.key, self.upstream = gateway, http, key, upstream
        self.mock_calls = 0
        self.oai = openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=key, http_client=http, max_retries=0
        )
        self.claude = anthropic.AsyncAnthropic(
            base_url="http://gateway", api_key=key, http_client=http2, max_retries=0
        )

    def calls(self) -> int:
        """Upstream calls so far: the built-in mock's and the mock server's."""
        return self.mock_calls + len(self.upstream.requests)

    async def post(
        self, path: str, body: dict[str, Any], key: str | None = None, **headers: str
    ) -> httpx.Response:
        return await self.http.post(
            path,
            json=body,
            headers={
                "authorization": f"Bearer {key or self.key}",
                "anthropic-version": "2023-06-01",
                **{k.replace("_", "-"): v for k, v in headers.items()},
            },
        )

    async def rows(self, request_id: str) -> tuple[RequestRow, UsageRecord | None]:
        """The call's requests row and usage row, once the writer has flushed them."""
        services = self.gateway.services
        for _ in range(200):
            async with services.sessions() as session:
                row = await session.scalar(
                    select(RequestRow).where(RequestRow.request_id == request_id)
                )
                usage = await session.get(UsageRecord, row.id) if row is not None else None
            if row is not None:
                return row, usage
            await asyncio.sleep(0.05)
        raise AssertionError(f"no row for {request_id}")


class _Counting:
    def __init__(self, inner: Any, harness: Harness) -> None:
        self.inner, self.harness = inner, harness

    async def send(self, call: Any, **kw: Any) -> Any:
        self.harness.mock_calls += 1
        return await self.inner.send(call, **kw)


@pytest.fixture(scope="module")
async def gw(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream
) -> AsyncIterator[Harness]:
    directory: Path = tmp_path_factory.mktemp("cache")
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{directory / 'gw.db'}",
            "log_file": "none",
            "auto_providers": False,
            "provider_reload_interval": 0,
            "log_flush_interval": 0.02,
            "plugins": {"cache": {"ttl": 600}},
            "aliases": {"fast-echo": "mock/echo"},
            # Widening whose answers a call reads is the operator's: stored configs only.
            "route_configs": {
                "shared": {"cache": {"scope": "global"}},
                "local": {
                    "cache": {
                        "mode": "semantic",
                        "threshold": 0.85,
                        "embedding_model": "local/all-MiniLM-L6-v2",
                    }
                },
                "loose": {
                    "cache": {
                        "mode": "semantic",
                        "threshold": 0.8,
                        "embedding_model": "mock/bag-of-words",
                    }
                },
            },
            "prices": {
                "mock/echo": {
                    "input_cost_per_token": "0.000001",
                    "output_cost_per_token": "0.000002",
                }
            },
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
    key, _ = await create_key(gateway.services.sessions, "cache")
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http2,
    ):
        # The anthropic SDK is built on httpx2 and refuses an httpx client.
        harness = Harness(gateway, http, key, upstream, http2)
        mock = gateway.services.registry.get("mock")
        assert mock is not None
        mock.transport = _Counting(mock.transport, harness)  # type: ignore[assignment]
        yield harness
    await gateway.shutdown()


def _question() -> str:
    """A prompt no other test asked (every test starts with an empty entry for it)."""
    return f"hello cache {uuid.uuid4().hex[:8]}"


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "mock/echo", "messages": [{"role": "user", "content": text}], **extra}


async def test_chat_miss_then_hit_in_both_forms_from_one_entry(gw: Harness) -> None:
    text = _question()
    before = gw.calls()
    first = await gw.oai.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    )
    assert first.headers["x-llmrelay-cache"] == "MISS"
    answer = first.parse().choices[0].message.content
    assert answer == text and gw.calls() == before + 1
    second = await gw.oai.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    )
    assert second.headers["x-llmrelay-cache"] == "HIT"
    assert int(second.headers["x-llmrelay-cache-age"]) >= 0
    assert second.headers["x-llmrelay-provider"] == "mock"
    assert float(second.headers["x-llmrelay-cost-usd"]) == 0
    hit = second.parse()
    assert hit.choices[0].message.content == answer and hit.usage is not None
    # The same entry, replayed as a stream the SDK parses, usage included when asked.
    stream = await gw.oai.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    got, usage, finish = read_chat_stream(chunks)
    assert (got, finish) == (answer, "stop")
    assert usage is not None and usage.total_tokens == hit.usage.total_tokens
    assert gw.calls() == before + 1


async def test_a_streamed_answer_is_stored_and_serves_both_forms(gw: Harness) -> None:
    text = _question()
    before = gw.calls()
    async with gw.oai.chat.completions.stream(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    ) as stream:
        streamed = (await stream.get_final_completion()).choices[0].message.content
    assert streamed == text
    whole = await gw.post("/v1/chat/completions", _chat(text))
    assert whole.headers["x-llmrelay-cache"] == "HIT"
    assert whole.json()["choices"][0]["message"]["content"] == text
    assert whole.json()["usage"]["completion_tokens"] > 0  # usage known though not asked
    async with gw.oai.chat.completions.stream(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    ) as again:
        replayed = await again.get_final_completion()
    assert replayed.choices[0].message.content == text
    assert gw.calls() == before + 1


async def test_the_key_is_the_resolved_target_not_the_name_asked_for(gw: Harness) -> None:
    body = _chat(_question())
    assert (await gw.post("/v1/chat/completions", body)).headers["x-llmrelay-cache"] == "MISS"
    alias = await gw.post("/v1/chat/completions", {**body, "model": "fast-echo"})
    assert alias.headers["x-llmrelay-cache"] == "HIT"
    routed = orjson.dumps(
        {"provider": "mock", "model": "echo", "override_params": {"temperature": 0}}
    ).decode()
    changed = await gw.post("/v1/chat/completions", body, x_llmrelay_config=routed)
    assert changed.headers["x-llmrelay-cache"] == "MISS"  # another parameter: another answer


async def test_tool_calls_replay_as_stream_deltas(gw: Harness) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    body = _chat(f"weather in Paris {_question()}", tools=[tool], tool_choice="required")
    first = await gw.post("/v1/chat/completions", body)
    call = first.json()["choices"][0]["message"]["tool_calls"][0]
    async with gw.oai.chat.completions.stream(**body) as stream:
        final = await stream.get_final_completion()
    replayed = final.choices[0].message.tool_calls
    assert replayed is not None and replayed[0].function.name == call["function"]["name"]
    assert replayed[0].function.arguments == call["function"]["arguments"]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_messages_translated_hit_and_stream_replay(gw: Harness) -> None:
    text = _question()
    before = gw.calls()
    kwargs: dict[str, Any] = {
        "model": "mock/echo",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
    }
    first = await gw.claude.messages.with_raw_response.create(**kwargs)
    assert first.headers["x-llmrelay-cache"] == "MISS"
    second = await gw.claude.messages.with_raw_response.create(**kwargs)
    assert second.headers["x-llmrelay-cache"] == "HIT"
    assert (await second.parse()).content[0].text == (await first.parse()).content[0].text
    assert (await first.parse()).content[0].text == text
    async with gw.claude.messages.stream(**kwargs) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert gw.calls() == before + 1


async def test_messages_passed_through_serve_both_forms_from_one_message(gw: Harness) -> None:
    kwargs: dict[str, Any] = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": _question()}],
    }
    before = gw.calls()
    first = await gw.claude.messages.create(**kwargs)
    second = await gw.claude.messages.with_raw_response.create(**kwargs)
    assert second.headers["x-llmrelay-cache"] == "HIT"
    assert second.headers["x-llmrelay-provider"] == "claude"
    assert (await second.parse()).content[0].text == first.content[0].text
    assert gw.calls() == before + 1
    # The stored message replays as Anthropic's events; a stored stream answers JSON.
    async with gw.claude.messages.stream(**kwargs) as stream:
        assert "".join([t async for t in stream.text_stream]) == first.content[0].text
        final = await stream.get_final_message()
    assert stream.response.headers["x-llmrelay-cache"] == "HIT"
    assert final.stop_reason == first.stop_reason and final.id == first.id
    assert final.usage.output_tokens == first.usage.output_tokens
    streamed = {**kwargs, "messages": [{"role": "user", "content": _question()}]}
    async with gw.claude.messages.stream(**streamed) as stream:
        live = await stream.get_final_message()
    whole = await gw.claude.messages.with_raw_response.create(**streamed)
    assert whole.headers["x-llmrelay-cache"] == "HIT"
    assert (await whole.parse()).content[0].text == live.content[0].text
    assert gw.calls() == before + 2


@pytest.mark.parametrize("model", ["mock/echo", "oai/gpt-4o"])
async def test_responses_hit_and_stream_replay(gw: Harness, model: str) -> None:
    text = _question()
    before = gw.calls()
    first = await gw.oai.responses.with_raw_response.create(model=model, input=text)
    assert first.headers["x-llmrelay-cache"] == "MISS"
    second = await gw.oai.responses.with_raw_response.create(model=model, input=text)
    assert second.headers["x-llmrelay-cache"] == "HIT"
    assert second.parse().output_text == first.parse().output_text == text
    async with gw.oai.responses.stream(model=model, input=text) as stream:
        final = await stream.get_final_response()
    assert final.output_text == text and final.status == "completed"
    raw = await gw.post("/v1/responses", {"model": model, "input": text, "stream": True})
    assert raw.headers["x-llmrelay-cache"] == "HIT" and b"response.completed" in raw.content
    assert final.id == first.parse().id or model == "mock/echo"  # passed through: its own
    assert gw.calls() == before + 1
    # A streamed answer is stored too, and serves JSON.
    other = _question()
    async with gw.oai.responses.stream(model=model, input=other) as live:
        streamed = await live.get_final_response()
    whole = await gw.oai.responses.with_raw_response.create(model=model, input=other)
    assert whole.headers["x-llmrelay-cache"] == "HIT"
    assert whole.parse().output_text == streamed.output_text == other
    assert gw.calls() == before + 2


async def test_embeddings_hit(gw: Harness) -> None:
    text = _question()
    before = gw.calls()
    first = await gw.oai.embeddings.with_raw_response.create(model="mock/echo", input=text)
    second = await gw.oai.embeddings.with_raw_response.create(model="mock/echo", input=text)
    assert (first.headers["x-llmrelay-cache"], second.headers["x-llmrelay-cache"]) == (
        "MISS",
        "HIT",
    )
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    other = await gw.oai.embeddings.with_raw_response.create(  # the SDK asks for base64
        model="mock/echo", input=text, encoding_format="float"
    )
    assert other.headers["x-llmrelay-cache"] == "MISS"  # another format: another entry
    assert gw.calls() == before + 2


async def test_keys_never_see_each_others_entries_unless_the_config_widens_scope(
    gw: Harness,
) -> None:
    other, _ = await create_key(gw.gateway.services.sessions, f"other-{uuid.uuid4().hex}")
    body = _chat(_question())
    assert (await gw.post("/v1/chat/completions", body)).headers["x-llmrelay-cache"] == "MISS"
    theirs = await gw.post("/v1/chat/completions", body, key=other)
    assert theirs.headers["x-llmrelay-cache"] == "MISS"
    refused = await gw.post(
        "/v1/chat/completions",
        body,
        key=other,
        x_llmrelay_config=(orjson.dumps({"cache": {"scope": "global"}}).decode()),
    )
    assert refused.status_code == 400  # a client may not widen it in a header config
    shared = "shared"  # a stored config: the operator's
    body = _chat(_question())
    await gw.post("/v1/chat/completions", body, x_llmrelay_config=shared)
    theirs = await gw.post("/v1/chat/completions", body, key=other, x_llmrelay_config=shared)
    assert theirs.headers["x-llmrelay-cache"] == "HIT"
    own_scope = await gw.post("/v1/chat/completions", body, key=other)
    assert own_scope.headers["x-llmrelay-cache"] == "MISS"


async def test_request_headers_bypass_no_store_refresh_and_namespace(gw: Harness) -> None:
    body = _chat(_question())

    async def result(**headers: str) -> str:
        resp = await gw.post("/v1/chat/completions", body, **headers)
        assert resp.status_code == 200, resp.text
        return resp.headers["x-llmrelay-cache"]

    assert await result(cache_control="no-store") == "MISS"
    assert await result(x_llmrelay_cache_bypass="true") == "BYPASS"
    assert await result() == "MISS"  # neither stored anything
    assert await result() == "HIT"
    assert await result(cache_control="no-cache") == "REFRESH"
    assert await result(x_portkey_cache_force_refresh="true") == "REFRESH"
    assert await result(x_portkey_cache_namespace="team-a") == "MISS"
    assert await result(x_llmrelay_cache_namespace="team-a") == "HIT"
    assert await result(cache_control="max-age=0") in ("MISS", "HIT")  # 0 s old may pass
    bad = await gw.post("/v1/chat/completions", body, x_llmrelay_cache_ttl="soon")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-llmrelay-cache-ttl"


async def test_an_entry_expires_after_its_ttl(gw: Harness) -> None:
    body = _chat(_question())
    await gw.post("/v1/chat/completions", body, x_llmrelay_cache_ttl="0.2")
    results = []
    for _ in range(200):  # polled: the entry is a hit until it expires, then a miss
        resp = await gw.post("/v1/chat/completions", body, cache_control="no-store")
        results.append(resp.headers["x-llmrelay-cache"])
        if results[-1] == "MISS":
            break
        await asyncio.sleep(0.02)
    assert results[-1] == "MISS"
    assert set(results[:-1]) <= {"HIT"}


async def test_answers_cut_by_max_tokens_are_not_stored(gw: Harness) -> None:
    # The mock upstream's Anthropic cuts the reply at max_tokens words: finish "length".
    body = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 2,
        "messages": [{"role": "user", "content": "one two three four " + _question()}],
    }
    first = await gw.post("/v1/messages", body)
    assert first.json()["stop_reason"] == "max_tokens"
    assert (await gw.post("/v1/messages", body)).headers["x-llmrelay-cache"] == "MISS"
    keep = orjson.dumps({"cache": {"store_truncated": True}}).decode()
    await gw.post("/v1/messages", body, x_llmrelay_config=keep)
    again = await gw.post("/v1/messages", body, x_llmrelay_config=keep)
    assert again.headers["x-llmrelay-cache"] == "HIT"


async def test_a_hit_leaves_a_row_with_cost_zero_and_the_cost_saved(gw: Harness) -> None:
    body = _chat(_question())
    miss = await gw.post(
        "/v1/chat/completions", body, x_request_id="cache-miss-row-" + uuid.uuid4().hex
    )
    hit = await gw.post(
        "/v1/chat/completions", body, x_request_id="cache-hit-row-" + uuid.uuid4().hex
    )
    miss_row, miss_usage = await gw.rows(miss.headers["x-request-id"])
    hit_row, hit_usage = await gw.rows(hit.headers["x-request-id"])
    assert miss_row.cache == "MISS" and miss_row.cost_nanos and miss_row.cost_nanos > 0
    assert hit_row.cache == "HIT" and hit_row.cost_nanos == 0
    assert hit_row.cost_saved_nanos == miss_row.cost_nanos
    assert hit_row.provider == "mock" and hit_row.attempts is None
    assert hit_usage is not None and hit_usage.cache_hit and hit_usage.cost_nanos == 0
    assert hit_usage.cost_saved_nanos == miss_row.cost_nanos
    assert miss_usage is not None and not miss_usage.cache_hit
    metrics = (await gw.http.get("/metrics")).text
    assert 'llmrelay_cache_requests_total{result="hit"}' in metrics
    assert "llmrelay_cache_saved_usd_total" in metrics
    ready = (await gw.http.get("/health/ready")).json()
    assert ready["cache"]["backend"] == "memory" and ready["cache"]["entries"] > 0


async def test_invalid_cache_options_in_a_config_are_refused(gw: Harness) -> None:
    bad = orjson.dumps({"cache": {"scope": "everyone"}}).decode()
    resp = await gw.post("/v1/chat/completions", _chat("x"), x_llmrelay_config=bad)
    assert resp.status_code == 400 and "cache.scope" in resp.text


async def test_errors_and_cut_streams_are_not_stored(gw: Harness) -> None:
    body = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": _question()}],
    }
    gw.upstream.script(Behaviour(status=529))
    failed = await gw.post("/v1/messages", body)
    assert failed.status_code >= 500
    assert failed.headers["x-llmrelay-cache"] == "MISS"
    gw.upstream.script(Behaviour(drop_after_chunks=3))
    cut = await gw.post("/v1/messages", {**body, "stream": True})
    assert b"message_stop" not in cut.content  # the upstream dropped it
    before = gw.calls()
    # Neither was stored: the next call goes upstream (and its answer serves streams).
    assert (await gw.post("/v1/messages", body)).headers["x-llmrelay-cache"] == "MISS"
    again = await gw.post("/v1/messages", {**body, "stream": True})
    assert again.headers["x-llmrelay-cache"] == "HIT" and b"message_stop" in again.content
    assert gw.calls() == before + 1


class _EndStreams(Plugin):
    """Stands for an output guardrail outside the cache: ends every stream at its end."""

    name = "ender"

    def stream(self, call: Call) -> StreamStep | None:
        return _End()


class _End(StreamStep):
    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        raise PermissionDenied("flagged by the test guardrail", code="flagged")


async def test_an_answer_an_outer_plugin_ended_is_not_stored(gw: Harness) -> None:
    services = gw.gateway.services
    normal = services.plugins
    services.plugins = PluginSelector(
        {"ender": lambda options: _EndStreams(), "cache": services.cache.plugin},
        normal.builtins,
        {"ender": {}, "cache": {}},
    )
    body = _chat(_question(), stream=True)
    try:
        flagged = await gw.post("/v1/chat/completions", body)
        assert b"flagged" in flagged.content
        assert flagged.headers["x-llmrelay-cache"] == "MISS"
    finally:
        services.plugins = normal
    assert (await gw.post("/v1/chat/completions", body)).headers["x-llmrelay-cache"] == "MISS"
    assert (await gw.post("/v1/chat/completions", body)).headers["x-llmrelay-cache"] == "HIT"


async def test_hits_count_against_rate_limits(gw: Harness) -> None:
    limited, _ = await create_key(gw.gateway.services.sessions, f"rpm-{uuid.uuid4().hex}", rpm=2)
    body = _chat(_question())
    results = [await gw.post("/v1/chat/completions", body, key=limited) for _ in range(3)]
    assert [r.headers.get("x-llmrelay-cache") for r in results[:2]] == ["MISS", "HIT"]
    assert results[2].status_code == 429


async def test_a_key_selects_the_cache_in_its_metadata(gw: Harness) -> None:
    services = gw.gateway.services
    normal = services.plugins
    services.plugins = PluginSelector({"cache": services.cache.plugin}, normal.builtins, {})
    try:
        plain = await gw.post("/v1/chat/completions", _chat(_question()))
        assert "x-llmrelay-cache" not in plain.headers  # no cache selected
        key, _ = await create_key(
            services.sessions,
            f"meta-{uuid.uuid4().hex}",
            metadata={"plugins": {"cache": {"ttl": 60}}},
        )
        body = _chat(_question())
        first = await gw.post("/v1/chat/completions", body, key=key)
        second = await gw.post("/v1/chat/completions", body, key=key)
        assert (first.headers["x-llmrelay-cache"], second.headers["x-llmrelay-cache"]) == (
            "MISS",
            "HIT",
        )
        config = orjson.dumps({"cache": {"mode": "simple"}}).decode()
        routed = await gw.post("/v1/chat/completions", body, x_llmrelay_config=config)
        assert routed.headers["x-llmrelay-cache"] == "MISS"  # a route config selects it too
    finally:
        services.plugins = normal


SEMANTIC = orjson.dumps(
    {"cache": {"mode": "semantic", "embedding_model": "mock/bag-of-words"}}
).decode()


async def test_semantic_hit_on_a_paraphrase_and_miss_on_a_near_miss(gw: Harness) -> None:
    # mock/bag-of-words: the same words in another order and case are similarity 1.0;
    # one word of six changed is 0.83, under the default threshold of 0.95.
    topic = uuid.uuid4().hex[:8]
    asked = f"What is the capital of {topic}?"
    first = await gw.post("/v1/chat/completions", _chat(asked), x_llmrelay_config=SEMANTIC)
    assert first.headers["x-llmrelay-cache"] == "MISS"
    before = gw.calls()
    paraphrase = await gw.post(
        "/v1/chat/completions", _chat(f"the CAPITAL of {topic} is what"), x_llmrelay_config=SEMANTIC
    )
    assert paraphrase.headers["x-llmrelay-cache"] == "SEMANTIC"
    assert float(paraphrase.headers["x-llmrelay-cache-similarity"]) > 0.99
    assert paraphrase.json()["choices"][0]["message"]["content"] == asked  # the stored one
    assert gw.calls() == before + 1  # the question's embedding; no chat call upstream
    near = await gw.post(
        "/v1/chat/completions",
        _chat(f"What is the population of {topic}?"),
        x_llmrelay_config=SEMANTIC,
    )
    assert near.headers["x-llmrelay-cache"] == "MISS"
    # A lower threshold in the config lets it match; a request may only raise it.
    loose = "loose"  # a stored config: a client may not lower the threshold in a header
    other = _chat(f"What is the capital city of {topic}?")  # 6 of 7 words shared: ~0.93
    tight = await gw.post(
        "/v1/chat/completions",
        other,
        x_llmrelay_config=loose,
        x_llmrelay_cache_threshold="0.97",
        cache_control="no-store",
    )
    assert tight.headers["x-llmrelay-cache"] == "MISS"
    matched = await gw.post(
        "/v1/chat/completions", other, x_llmrelay_config=loose, cache_control="no-store"
    )
    assert matched.headers["x-llmrelay-cache"] == "SEMANTIC"
    # The same question in another context (another system prompt) is not a match.
    system = {"role": "system", "content": "Answer in French."}
    framed = _chat(f"the capital of {topic} is what")
    framed["messages"].insert(0, system)
    elsewhere = await gw.post("/v1/chat/completions", framed, x_llmrelay_config=SEMANTIC)
    assert elsewhere.headers["x-llmrelay-cache"] == "MISS"


async def test_semantic_hit_with_the_local_model(gw: Harness) -> None:
    # all-MiniLM-L6-v2 in this process: a paraphrase in other words (0.92) is a hit, the
    # same words about another company (0.80) are not (bench/semantic_quality.py).
    topic = uuid.uuid4().hex[:6]
    asked = f"How old is the CEO of Apple? ({topic})"
    first = await gw.post("/v1/chat/completions", _chat(asked), x_llmrelay_config="local")
    assert first.headers["x-llmrelay-cache"] == "MISS"
    before = gw.calls()
    paraphrase = await gw.post(
        "/v1/chat/completions",
        _chat(f"What is the age of Apple's chief executive? ({topic})"),
        x_llmrelay_config="local",
    )
    assert paraphrase.headers["x-llmrelay-cache"] == "SEMANTIC"
    assert 0.85 <= float(paraphrase.headers["x-llmrelay-cache-similarity"]) < 0.99
    assert paraphrase.json()["choices"][0]["message"]["content"] == asked
    assert gw.calls() == before  # embedded in this process: no upstream call at all
    near = await gw.post(
        "/v1/chat/completions",
        _chat(f"How old is the CEO of Microsoft? ({topic})"),
        x_llmrelay_config="local",
    )
    assert near.headers["x-llmrelay-cache"] == "MISS"


async def test_semantic_hits_on_messages_and_responses_streams(gw: Harness) -> None:
    topic = uuid.uuid4().hex[:8]
    await gw.post(
        "/v1/responses",
        {"model": "mock/echo", "input": f"Who founded {topic}?"},
        x_llmrelay_config=SEMANTIC,
    )
    similar = await gw.post(
        "/v1/responses",
        {"model": "mock/echo", "stream": True, "input": f"who FOUNDED {topic}"},
        x_llmrelay_config=SEMANTIC,
    )
    assert similar.headers["x-llmrelay-cache"] == "SEMANTIC"
    assert b"response.completed" in similar.content
    body = {
        "model": "mock/echo",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": f"Where is {topic} based?"}],
    }
    await gw.post("/v1/messages", body, x_llmrelay_config=SEMANTIC)
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": f"{topic} is based where?"}]}
    ]
    again = await gw.post("/v1/messages", body, x_llmrelay_config=SEMANTIC)
    assert again.headers["x-llmrelay-cache"] == "SEMANTIC"
    assert again.json()["content"][0]["text"] == f"Where is {topic} based?"


async def test_semantic_mode_without_a_working_embedder_is_exact(gw: Harness) -> None:
    broken = orjson.dumps(
        {"cache": {"mode": "semantic", "embedding_model": "nowhere/none"}}
    ).decode()
    body = _chat(_question())
    first = await gw.post("/v1/chat/completions", body, x_llmrelay_config=broken)
    second = await gw.post("/v1/chat/completions", body, x_llmrelay_config=broken)
    assert (first.status_code, first.headers["x-llmrelay-cache"]) == (200, "MISS")
    assert second.headers["x-llmrelay-cache"] == "HIT"
    # Seed 004's {"mode": "semantic"} with no embeddings model anywhere: matched exactly.
    seed = orjson.dumps({"cache": {"mode": "semantic", "ttl": 3600}}).decode()
    body = _chat(_question())
    first = await gw.post("/v1/chat/completions", body, x_llmrelay_config=seed)
    second = await gw.post("/v1/chat/completions", body, x_llmrelay_config=seed)
    assert (first.headers["x-llmrelay-cache"], second.headers["x-llmrelay-cache"]) == (
        "MISS",
        "HIT",
    )


async def test_seed_004_metadata_in_chat_bodies_when_configured(gw: Harness) -> None:
    runtime = gw.gateway.services.cache
    runtime.add_metadata = True  # response_cache.metadata: true
    try:
        body = _chat(_question())
        miss = (await gw.post("/v1/chat/completions", body)).json()
        hit = (await gw.post("/v1/chat/completions", body)).json()
    finally:
        runtime.add_metadata = False
    assert miss["metadata"]["cache_hit"] is False and miss["metadata"]["provider"] == "mock"
    assert miss["metadata"]["cost_usd"] > 0
    assert hit["metadata"] == {"cache_hit": True, "provider": "mock", "cost_usd": 0.0}
    plain = (await gw.post("/v1/chat/completions", body)).json()
    assert "metadata" not in plain  # the entry was stored without it


@pytest.mark.parametrize("model", ["mock/echo", "claude/claude-sonnet-4-5"])
async def test_seed_004_metadata_in_messages_bodies(gw: Harness, model: str) -> None:
    # Translated (mock) and passed through (Anthropic): the field is added to the message.
    runtime = gw.gateway.services.cache
    runtime.add_metadata = True
    body = {
        "model": model,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": _question()}],
    }
    try:
        miss = (await gw.post("/v1/messages", body)).json()
        hit = await gw.claude.messages.with_raw_response.create(**body)
    finally:
        runtime.add_metadata = False
    provider = model.split("/")[0]
    assert miss["type"] == "message" and miss["metadata"]["cache_hit"] is False
    assert miss["metadata"]["provider"] == provider
    assert hit.headers["x-llmrelay-cache"] == "HIT"
    parsed = await hit.parse()  # the SDK reads the message with the extra field
    assert parsed.type == "message" and parsed.content
    assert orjson.loads(hit.http_response.content)["metadata"] == {
        "cache_hit": True,
        "provider": provider,
        "cost_usd": 0.0,
    }


@pytest.mark.parametrize("model", ["mock/echo", "oai/gpt-4o"])
async def test_seed_004_metadata_in_responses_bodies(gw: Harness, model: str) -> None:
    # A response's metadata echoes the request's (strings): the three join it as strings.
    runtime = gw.gateway.services.cache
    runtime.add_metadata = True
    body = {"model": model, "input": _question(), "metadata": {"team": "docs"}}
    try:
        miss = (await gw.post("/v1/responses", body)).json()
        hit = await gw.oai.responses.with_raw_response.create(**body)
    finally:
        runtime.add_metadata = False
    provider = model.split("/")[0]
    assert miss["object"] == "response"
    assert miss["metadata"]["cache_hit"] == "false" and miss["metadata"]["team"] == "docs"
    assert hit.headers["x-llmrelay-cache"] == "HIT"
    assert hit.parse().metadata == {
        "team": "docs",
        "cache_hit": "true",
        "provider": provider,
        "cost_usd": "0.000000000",
    }


async def test_reasoning_is_replayed_in_a_chat_stream(gw: Harness) -> None:
    # Anthropic's thinking, translated to chat (reasoning_content), stored once, then
    # replayed as chat chunks carrying the reasoning deltas.
    body = _chat(
        _question(),
        model="claude/claude-sonnet-4-5",
        max_tokens=200,
        thinking={"type": "enabled", "budget_tokens": 100},
    )
    first = (await gw.post("/v1/chat/completions", body)).json()
    reasoning = first["choices"][0]["message"]["reasoning_content"]
    assert reasoning.startswith("The user wrote")
    replay = await gw.post("/v1/chat/completions", {**body, "stream": True})
    assert replay.headers["x-llmrelay-cache"] == "HIT"
    chunks = [
        orjson.loads(event_data(e) or b"{}")
        for e in EventSplitter().feed(replay.content)
        if event_data(e) not in (None, b"[DONE]")
    ]
    assert (
        "".join(
            c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]
        )
        == reasoning
    )


async def test_a_hit_costs_nothing_against_the_keys_budget(gw: Harness) -> None:
    from decimal import Decimal

    from llmrelay.store.schema import MonthlyUsageSummary

    services = gw.gateway.services
    budgeted, record = await create_key(
        services.sessions, f"budget-{uuid.uuid4().hex}", budget=Decimal("1")
    )
    body = _chat(_question())
    miss = await gw.post("/v1/chat/completions", body, key=budgeted)
    hit = await gw.post("/v1/chat/completions", body, key=budgeted)
    assert (miss.headers["x-llmrelay-cache"], hit.headers["x-llmrelay-cache"]) == ("MISS", "HIT")
    miss_row, _ = await gw.rows(miss.headers["x-request-id"])
    await gw.rows(hit.headers["x-request-id"])
    for _ in range(100):  # the summary is written with the rows' batch
        async with services.sessions() as session:
            summary = await session.scalar(
                select(MonthlyUsageSummary).where(MonthlyUsageSummary.api_key_id == record.id)
            )
        if summary is not None and summary.total_requests == 2:
            break
        await asyncio.sleep(0.05)
    assert summary is not None and summary.total_requests == 2
    assert summary.total_cost_nanos == miss_row.cost_nanos  # the hit added no spend


async def test_an_answer_a_guardrail_found_pii_in_is_not_stored(gw: Harness) -> None:
    """Issue 10: "anything a guardrail flagged" is never kept (the cache is the outer
    plug-in; its finish step sees the guardrails' findings)."""
    config = orjson.dumps(
        {"guardrails": {"input": [{"type": "pii_detection", "action": "flag"}]}}
    ).decode()
    body = _chat(f"write to ana@example.com {_question()}")
    first = await gw.post("/v1/chat/completions", body, x_llmrelay_config=config)
    assert first.status_code == 200 and first.headers["x-llmrelay-cache"] == "MISS"
    again = await gw.post("/v1/chat/completions", body, x_llmrelay_config=config)
    assert again.headers["x-llmrelay-cache"] == "MISS"
    clean = _chat(_question())
    await gw.post("/v1/chat/completions", clean, x_llmrelay_config=config)
    assert (await gw.post("/v1/chat/completions", clean, x_llmrelay_config=config)).headers[
        "x-llmrelay-cache"
    ] == "HIT"


async def test_single_flight_identical_misses_wait_for_the_first_answer(gw: Harness) -> None:
    body = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": _question()}],
    }
    # The first answer takes 300 ms: without single flight all four would call upstream.
    gw.upstream.script(Behaviour(delay_ms=300))
    before = gw.calls()
    answers = await asyncio.gather(*(gw.post("/v1/messages", body) for _ in range(4)))
    verdicts = sorted(a.headers["x-llmrelay-cache"] for a in answers)
    assert verdicts == ["HIT", "HIT", "HIT", "MISS"]
    assert gw.calls() == before + 1
    assert len({a.json()["content"][0]["text"] for a in answers}) == 1
    assert not gw.gateway.services.cache.flights  # released once stored


async def test_single_flight_followers_go_on_when_the_first_call_fails(gw: Harness) -> None:
    body = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": _question()}],
    }
    gw.upstream.script(Behaviour(status=529, delay_ms=200))
    answers = await asyncio.gather(*(gw.post("/v1/messages", body) for _ in range(3)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and statuses[-1] >= 500  # the followers called upstream
    assert not gw.gateway.services.cache.flights
