"""Plug-ins in the real pipeline: every endpoint passes the same chain, in onion order.

A real gateway runs in this process (``httpx.ASGITransport``) with the built-in mock
provider; test plug-ins are selected the way operators select them (the settings'
``plugins`` block, a key's ``metadata.plugins``). What a plug-in answers or rewrites
is in the internal (OpenAI) form, and the client receives it in its own API's shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from llmrelay.app import Gateway
from llmrelay.cli import main
from llmrelay.config import load_settings
from llmrelay.context import Call
from llmrelay.errors import PermissionDenied
from llmrelay.governance.keys import create_key
from llmrelay.plugins.chain import Answer, Plugin, PluginSelector, Replay, StreamStep
from llmrelay.providers.base import ChatResult, Usage
from llmrelay.sse import DONE, EventSplitter, encode_json, event_data
from llmrelay.store.schema import RequestRow

#: What each plug-in did, in order, as ``"<name>.<step>"``.
TRACE: list[str] = []


def _completion(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-plugin",
            "object": "chat.completion",
            "created": 1,
            "model": "echo",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def _chunk(text: str) -> bytes:
    return encode_json(
        {
            "id": "chatcmpl-plugin",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "echo",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


class _Upper(StreamStep):
    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return [e.replace(b"hello", b"HELLO") for e in events]


class _Stop(StreamStep):
    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        raise PermissionDenied("the test plug-in stopped this stream", code="plugin_stop")


class Recorder(Plugin):
    """Records its steps; what else it does is chosen by its options."""

    name = "recorder"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.tag = str(options.get("tag", "r"))
        self.options = options

    async def before(self, call: Call) -> Answer | None:
        TRACE.append(f"{self.tag}.before")
        if self.options.get("answer") == "json" and not call.stream:
            return ChatResult(_completion("from the plug-in"), Usage(1, 1, 2), "stop")
        if self.options.get("answer") == "replay" and call.stream:
            events = [_chunk("replayed "), _chunk("answer"), DONE]
            return Replay(events, Usage(1, 2, 3), "stop")
        return None

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        TRACE.append(f"{self.tag}.after")
        if self.options.get("upper"):
            answer.body = answer.body.replace(b"hello", b"HELLO")
        return answer

    def stream(self, call: Call) -> StreamStep | None:
        TRACE.append(f"{self.tag}.stream")
        if self.options.get("upper"):
            return _Upper()
        if self.options.get("stop"):
            return _Stop()
        return None


def _factory(options: Mapping[str, Any]) -> Plugin:
    return Recorder(options)


class Harness:
    def __init__(self, gateway: Gateway, client: httpx.AsyncClient, key: str) -> None:
        self.gateway = gateway
        self.client = client
        self.key = key
        self.upstream_calls = 0

    def use(self, configured: dict[str, dict[str, Any]]) -> None:
        """Select plug-ins as the settings' ``plugins`` block would."""
        services = self.gateway.services
        services.plugins = PluginSelector(
            {"recorder": _factory, "second": _factory}, services.plugins.builtins, configured
        )
        TRACE.clear()

    async def post(self, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return await self.client.post(
            path,
            json=body,
            headers={
                "authorization": f"Bearer {key or self.key}",
                "anthropic-version": "2023-06-01",
            },
        )

    async def rows(self, at_least: int = 0) -> int:
        """Rows in the database, once there are ``at_least`` (the writer batches)."""
        services = self.gateway.services
        for _ in range(200):
            async with services.sessions() as session:
                count = int(await session.scalar(select(func.count()).select_from(RequestRow)) or 0)
            if count >= at_least and services.writer.pending == 0:
                return count
            await asyncio.sleep(0.05)
        return count


class _CountingTransport:
    def __init__(self, inner: Any, harness: Harness) -> None:
        self.inner, self.harness = inner, harness

    async def send(self, call: Any, **kw: Any) -> Any:
        self.harness.upstream_calls += 1
        return await self.inner.send(call, **kw)


@pytest.fixture(scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    directory: Path = tmp_path_factory.mktemp("plugins")
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{directory / 'gw.db'}",
            "log_file": "none",
            "auto_providers": False,
            "provider_reload_interval": 0,
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    key, _ = await create_key(gateway.services.sessions, "plugins")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
    ) as client:
        harness = Harness(gateway, client, key)
        mock = gateway.services.registry.get("mock")
        assert mock is not None
        mock.transport = _CountingTransport(mock.transport, harness)  # type: ignore[assignment]
        yield harness
    await gateway.shutdown()


CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "mock/echo",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello there"}],
}
RESPONSES = {"model": "mock/echo", "input": "hello there"}


def _events(body: bytes) -> list[bytes]:
    return [d for d in (event_data(e) for e in EventSplitter().feed(body)) if d is not None]


async def test_a_before_step_answers_without_the_upstream_in_each_client_shape(
    gw: Harness,
) -> None:
    gw.use({"recorder": {"answer": "json"}})
    before = gw.upstream_calls
    chat = await gw.post("/v1/chat/completions", CHAT)
    assert chat.status_code == 200
    assert chat.json()["choices"][0]["message"]["content"] == "from the plug-in"
    message = await gw.post("/v1/messages", MESSAGES)
    assert message.status_code == 200
    assert message.json()["type"] == "message"
    assert message.json()["content"][0]["text"] == "from the plug-in"
    response = await gw.post("/v1/responses", RESPONSES)
    assert response.json()["output"][0]["content"][0]["text"] == "from the plug-in"
    assert gw.upstream_calls == before
    assert TRACE == ["r.before", "r.after"] * 3


async def test_after_steps_run_innermost_first_and_only_for_entered_plugins(
    gw: Harness,
) -> None:
    gw.use({"recorder": {"tag": "outer"}, "second": {"tag": "inner", "answer": "json"}})
    resp = await gw.post("/v1/chat/completions", CHAT)
    assert resp.status_code == 200
    assert TRACE == ["outer.before", "inner.before", "inner.after", "outer.after"]
    gw.use({"recorder": {"tag": "outer", "answer": "json"}, "second": {"tag": "inner"}})
    await gw.post("/v1/chat/completions", CHAT)
    assert TRACE == ["outer.before", "outer.after"]  # inner never entered


async def test_an_after_step_replaces_the_answer_before_it_is_encoded(gw: Harness) -> None:
    gw.use({"recorder": {"upper": True}})
    calls = gw.upstream_calls
    rows = await gw.rows()
    chat = await gw.post("/v1/chat/completions", CHAT)
    assert "HELLO there" in chat.json()["choices"][0]["message"]["content"]
    message = await gw.post("/v1/messages", MESSAGES)
    assert "HELLO there" in message.json()["content"][0]["text"]
    assert gw.upstream_calls == calls + 2
    assert await gw.rows(rows + 2) == rows + 2  # upstream calls leave their rows as ever


async def test_a_stream_step_rewrites_events_before_they_are_encoded(gw: Harness) -> None:
    gw.use({"recorder": {"upper": True}})
    chat = await gw.post("/v1/chat/completions", {**CHAT, "stream": True})
    text = "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in _events(chat.content)
        if e != b"[DONE]" and b"choices" in e
    )
    assert "HELLO there" in text
    message = await gw.post("/v1/messages", {**MESSAGES, "stream": True})
    deltas = [orjson.loads(e) for e in _events(message.content)]
    text = "".join(d["delta"].get("text", "") for d in deltas if d["type"] == "content_block_delta")
    assert "HELLO there" in text
    assert deltas[-1]["type"] == "message_stop"
    assert TRACE == ["r.before", "r.stream"] * 2


async def test_a_stream_step_ends_the_stream_with_the_clients_error_event(gw: Harness) -> None:
    gw.use({"recorder": {"stop": True}})
    chat = await gw.post("/v1/chat/completions", {**CHAT, "stream": True})
    last = orjson.loads(_events(chat.content)[-1])
    assert last["error"]["code"] == "plugin_stop"
    assert b"[DONE]" not in chat.content
    message = await gw.post("/v1/messages", {**MESSAGES, "stream": True})
    assert b"event: error" in message.content
    last = orjson.loads(_events(message.content)[-1])
    assert last["type"] == "error" and last["error"]["type"] == "permission_error"


async def test_a_replayed_stream_is_encoded_for_each_client(gw: Harness) -> None:
    gw.use({"recorder": {"answer": "replay"}})
    calls = gw.upstream_calls
    chat = await gw.post("/v1/chat/completions", {**CHAT, "stream": True})
    assert chat.status_code == 200
    assert b"replayed " in chat.content and chat.content.endswith(DONE)
    message = await gw.post("/v1/messages", {**MESSAGES, "stream": True})
    types = [orjson.loads(e)["type"] for e in _events(message.content)]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert b"replayed " in message.content
    assert gw.upstream_calls == calls


async def test_a_key_selects_plugins_in_its_metadata(gw: Harness) -> None:
    gw.use({})
    key, _ = await create_key(
        gw.gateway.services.sessions,
        "with-plugin",
        metadata={"plugins": {"recorder": {"tag": "key", "upper": True}}},
    )
    resp = await gw.post("/v1/chat/completions", CHAT, key=key)
    assert "HELLO there" in resp.json()["choices"][0]["message"]["content"]
    assert TRACE == ["key.before", "key.after"]
    plain = await gw.post("/v1/chat/completions", CHAT)
    assert "hello there" in plain.json()["choices"][0]["message"]["content"]
    assert TRACE == ["key.before", "key.after"]  # the other key selects none


async def test_a_key_naming_an_unknown_plugin_is_refused_before_any_call(gw: Harness) -> None:
    gw.use({})
    key, _ = await create_key(
        gw.gateway.services.sessions, "bad-plugin", metadata={"plugins": {"nope": {}}}
    )
    calls = gw.upstream_calls
    resp = await gw.post("/v1/chat/completions", CHAT, key=key)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "unknown_plugin"
    assert gw.upstream_calls == calls


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def test_keys_create_plugins_selects_plugins_for_that_key(
    gw: Harness, tmp_path: Path
) -> None:
    gw.use({})
    config = tmp_path / "cli.yaml"
    config.write_text(f"database_url: {gw.gateway.settings.database_url}\n")
    code, out, err = await asyncio.to_thread(
        _cli,
        "keys",
        "--config",
        str(config),
        "create",
        "--name",
        "cli-plugins",
        "--plugins",
        '{"recorder": {"tag": "cli", "upper": true}}',
    )
    assert code == 0, err
    resp = await gw.post("/v1/chat/completions", CHAT, key=out.strip().splitlines()[-1])
    assert "HELLO there" in resp.json()["choices"][0]["message"]["content"]
    assert TRACE == ["cli.before", "cli.after"]
    code, _, err = await asyncio.to_thread(
        _cli,
        "keys",
        "--config",
        str(config),
        "create",
        "--name",
        "cli-bad",
        "--plugins",
        '["recorder"]',
    )
    assert code == 1 and "--plugins must map plug-in names" in err


def _contributing_example() -> dict[str, Any]:
    """The worked example of CONTRIBUTING.md ("Adding a plug-in"), as written there."""
    text = (Path(__file__).parents[2] / "CONTRIBUTING.md").read_text()
    section = text.split("## Adding a plug-in", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)
    return namespace


async def test_the_contributing_example_plugin_works_on_every_endpoint(gw: Harness) -> None:
    example = _contributing_example()
    services = gw.gateway.services
    services.plugins = PluginSelector(
        {"word_block": example["WordBlock"]},
        services.plugins.builtins,
        {"word_block": {"word": "hello"}},
    )
    chat = await gw.post("/v1/chat/completions", CHAT)
    assert chat.status_code == 403 and chat.json()["error"]["code"] == "word_blocked"
    message = await gw.post("/v1/messages", MESSAGES)
    assert message.status_code == 403 and message.json()["type"] == "error"
    stream = await gw.post("/v1/chat/completions", {**CHAT, "stream": True})
    assert stream.status_code == 200 and b"word_blocked" in stream.content
    assert b"hello" not in stream.content
    fine = await gw.post(
        "/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert fine.status_code == 200


async def test_a_config_of_only_a_cache_block_routes_the_requested_model(gw: Harness) -> None:
    gw.use({})
    config = orjson.dumps({"cache": {"mode": "simple", "ttl": 60}}).decode()
    resp = await gw.client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {gw.key}", "x-llmrelay-config": config},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-llmrelay-provider"] == "mock"
    unknown = await gw.client.post(
        "/v1/chat/completions",
        json={**CHAT, "model": "nowhere/none"},
        headers={"authorization": f"Bearer {gw.key}", "x-llmrelay-config": config},
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "model_not_found"
