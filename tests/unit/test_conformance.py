"""One provider conformance suite; every adapter opts in by capability.

Each case is a provider configured exactly as a user would (``build_registry`` from
settings) against the real mock upstream on loopback; the suite drives the adapter the
way the pipeline does (build call -> transport -> translate, the adapter's own frame
splitter for streams) and checks the OpenAI shapes a client relies on. Adding a
provider family = one :class:`Case` row with the capabilities it has; a capability it
lacks must be refused with a 400 naming the parameter, never silently ignored.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmrelay.config import Settings
from llmrelay.errors import UnsupportedParameter, UpstreamError
from llmrelay.mock_upstream import Behaviour, MockUpstream
from llmrelay.providers.config_types import parse_provider
from llmrelay.providers.mock import MockTransport
from llmrelay.providers.registry import Provider, build_registry
from llmrelay.sse import EventSplitter, event_data
from llmrelay.upstream import HttpTransport
from tests.native_providers import CHAT_MODELS, native_providers

ALL = frozenset({"json_object", "json_schema", "seed", "stop", "images", "embeddings",
                 "models", "image_urls", "translates"})


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    #: what the provider can do (see ALL); anything else must be refused by name.
    caps: frozenset[str]
    embedding_model: str | None = None


CASES = [
    Case("gemini", "gemini-2.0-flash", ALL - {"image_urls"}, "text-embedding-004"),
    Case("vertex", "gemini-2.0-flash", ALL - {"image_urls"}, "text-embedding-004"),
    Case("bedrock", "anthropic.claude-3-haiku-20240307-v1:0",
         ALL - {"json_object", "json_schema", "seed", "image_urls"},
         "amazon.titan-embed-text-v2:0"),
    Case("azure", "gpt-4o-prod", ALL - {"translates", "models"}, "embed-prod"),
    Case("ollama", "llama3:8b", ALL - {"translates"}, "text-embedding-3-small"),
    Case("anthropic", "claude-sonnet-4-5", ALL - {"seed", "embeddings"}),
]
assert set(CHAT_MODELS) <= {c.provider for c in CASES}


def cases(*needs: str) -> list[Any]:
    return [pytest.param(c, id=c.provider) for c in CASES if set(needs) <= c.caps]


@pytest.fixture
async def connect(mock: MockUpstream, tmp_path: Path
                  ) -> AsyncIterator[Callable[[Case, dict[str, Any]], Provider]]:
    http = HttpTransport()
    configs = {p["name"]: p for p in native_providers(mock, tmp_path)}
    configs["anthropic"] = {"name": "anthropic", "type": "anthropic", "base_url": mock.base_url,
                            "api_key": "sk-ant-test"}

    def make(case: Case, extra: dict[str, Any]) -> Provider:
        cfg = parse_provider({**configs[case.provider], **extra})
        settings = Settings(providers=[cfg], mock_provider=False, auto_providers=False)
        provider = build_registry(settings, {}, http, MockTransport()).get(case.provider)
        assert provider is not None
        return provider

    yield make
    await http.close()


class Driver:
    """The pipeline's calls to an adapter, without the HTTP server around them."""

    def __init__(self, provider: Provider, model: str) -> None:
        self.p = provider
        self.model = model

    async def _open(self, ucall: Any, stream: bool) -> Any:
        resp = await self.p.transport.send(ucall, provider=self.p.name, timeout=10,
                                           connect_timeout=5, stream=stream)
        if resp.status >= 400:
            raise self.p.adapter.error(self.p.spec, resp.status, await resp.read(),
                                       resp.headers)
        return resp

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        ucall = self.p.adapter.chat_request(self.p.spec, body, self.model, False)
        resp = await self._open(ucall, False)
        result = self.p.adapter.chat_response(self.p.spec, await resp.read(), self.model)
        parsed: dict[str, Any] = orjson.loads(result.body)
        assert result.finish_reason == parsed["choices"][0]["finish_reason"]
        return parsed

    async def stream(self, body: dict[str, Any], usage: bool = False) -> list[Any]:
        body = {**body, "stream": True}  # as the client's body says; pass-through keeps it
        if usage:
            body["stream_options"] = {"include_usage": True}
        ucall = self.p.adapter.chat_request(self.p.spec, body, self.model, True)
        resp = await self._open(ucall, True)
        translator = self.p.adapter.chat_stream(self.p.spec, self.model, usage)
        splitter = self.p.adapter.splitter(self.p.spec, 1 << 24)
        out: list[bytes] = []
        async for chunk in resp.chunks():
            for event in splitter.feed(chunk):
                out.extend(translator.feed(event))
        out.extend(translator.end())
        assert translator.done
        events = [event_data(e) for e in EventSplitter().feed(b"".join(out))]
        assert events[-1] == b"[DONE]"
        return [orjson.loads(e) for e in events[:-1] if e is not None]


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}]


@pytest.mark.parametrize("case", cases())
async def test_text(connect: Any, mock: MockUpstream, case: Case) -> None:
    d = Driver(connect(case, {}), case.model)
    body = {"messages": [
        {"role": "system", "content": "sys prompt"}, {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "hello world"}]}
    r = await d.chat(body)
    assert r["object"] == "chat.completion" and isinstance(r["id"], str) and r["id"]
    message = r["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == "hello world"
    assert r["choices"][0]["finish_reason"] == "stop"
    usage = r["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == 2
    sent = orjson.dumps(mock.last_request.body).decode()
    assert "sys prompt" in sent and "first" in sent and "ok" in sent


@pytest.mark.parametrize("case", cases())
async def test_stream(connect: Any, case: Case) -> None:
    d = Driver(connect(case, {}), case.model)
    chunks = await d.stream(user("one two three"))
    # (Azure leads with a choice-less content-filter chunk whose object is "")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks if c["choices"])
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0].get("role") == "assistant"
    assert "".join(d.get("content") or "" for d in deltas) == "one two three"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    with_usage = await d.stream(user("one two three"), usage=True)
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("case", cases())
async def test_tools(connect: Any, case: Case) -> None:
    d = Driver(connect(case, {}), case.model)
    body = {**user("use the tool"), "tools": TOOLS, "tool_choice": "auto"}
    r = await d.chat(body)
    choice = r["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup"
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict)
    chunks = await d.stream(body)
    calls = [t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get(
        "tool_calls") or ()]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "lookup"
    arguments = "".join(t["function"].get("arguments") or "" for t in calls)
    assert orjson.loads(arguments) == orjson.loads(call["function"]["arguments"])
    follow = {"messages": [*body["messages"], choice["message"],
                           {"role": "tool", "tool_call_id": call["id"], "content": "42"}],
              "tools": TOOLS}
    again = await d.chat(follow)
    assert again["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize("case", cases("images"))
async def test_image_inline(connect: Any, mock: MockUpstream, case: Case) -> None:
    data = base64.b64encode(b"GIF89a" + bytes(10)).decode()
    content = [{"type": "text", "text": "look"},
               {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{data}"}}]
    r = await Driver(connect(case, {}), case.model).chat(
        {"messages": [{"role": "user", "content": content}]})
    assert r["choices"][0]["message"]["content"] == "look"
    assert data in orjson.dumps(mock.last_request.body).decode()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.provider) for c in CASES
                                  if "image_urls" not in c.caps])
async def test_image_url_refused_by_name(connect: Any, case: Case) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with pytest.raises(Exception) as exc:
        await Driver(connect(case, {}), case.model).chat(
            {"messages": [{"role": "user", "content": content}]})
    assert getattr(exc.value, "status", None) == 400
    assert exc.value.param == "messages[0].content[0].image_url"  # type: ignore[attr-defined]


@pytest.mark.parametrize("feature", ["json_object", "json_schema", "seed", "stop"])
@pytest.mark.parametrize("case", cases())
async def test_parameters_honoured_or_refused(connect: Any, case: Case, feature: str) -> None:
    options: dict[str, dict[str, Any]] = {
        "json_object": {"response_format": {"type": "json_object"}},
        "json_schema": {"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}},
        "seed": {"seed": 1},
        "stop": {"stop": ["zzz"]},
    }
    extra = options[feature]
    param = next(iter(extra))
    body = {**user("hello"), **extra, "temperature": 0.5, "top_p": 0.9, "max_tokens": 20}
    if feature in case.caps:
        r = await Driver(connect(case, {}), case.model).chat(body)
        content = r["choices"][0]["message"]["content"]
        # (a JSON mode may be emulated, e.g. with a forced tool: then content is JSON)
        assert content == "hello" or (feature.startswith("json") and isinstance(content, str))
        return
    with pytest.raises(UnsupportedParameter) as exc:
        await Driver(connect(case, {}), case.model).chat(body)
    assert exc.value.param == param and case.provider in exc.value.message
    dropped = await Driver(connect(case, {"drop_params": True}), case.model).chat(body)
    assert dropped["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize("case", cases("translates"))
async def test_unknown_parameter_refused(connect: Any, case: Case) -> None:
    with pytest.raises(UnsupportedParameter) as exc:
        await Driver(connect(case, {}), case.model).chat({**user("x"), "logit_bias": {"1": 2}})
    assert exc.value.param == "logit_bias"


@pytest.mark.parametrize(("status", "expected"), [
    (401, 401), (403, 403), (404, 404), (429, 429), (500, 500), (503, 503)])
@pytest.mark.parametrize("case", cases())
async def test_errors(connect: Any, mock: MockUpstream, case: Case, status: int,
                      expected: int) -> None:
    headers = {"retry-after": "3"} if status == 429 else {}
    mock.script(Behaviour(status=status, headers=headers, error_message="scripted failure"))
    with pytest.raises(UpstreamError) as exc:
        await Driver(connect(case, {}), case.model).chat(user("x"))
    err = exc.value
    assert err.status == expected
    assert "scripted failure" in err.message
    body: Any = err.to_dict()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if status == 429:
        assert err.headers.get("retry-after") == "3"
        assert err.retry_may_help


@pytest.mark.parametrize("case", cases("embeddings"))
async def test_embeddings(connect: Any, case: Case) -> None:
    provider = connect(case, {})
    assert case.embedding_model is not None
    single = "titan" in case.embedding_model
    body = {"input": "hello" if single else ["hello", "world"]}
    ucall = provider.adapter.embeddings_request(provider.spec, body, case.embedding_model)
    resp = await provider.transport.send(ucall, provider=case.provider, timeout=10,
                                         connect_timeout=5, stream=False)
    assert resp.status == 200, await resp.read()
    result = provider.adapter.embeddings_response(provider.spec, await resp.read(),
                                                  case.embedding_model)
    data = orjson.loads(result.body)
    assert data["object"] == "list" and len(data["data"]) == (1 if single else 2)
    assert all(isinstance(v, float) for item in data["data"] for v in item["embedding"])


@pytest.mark.parametrize("case", cases())
async def test_model_list(connect: Any, case: Case) -> None:
    provider = connect(case, {})
    ucall = provider.adapter.models_request(provider.spec)
    if "models" not in case.caps:
        assert ucall is None
        return
    resp = await provider.transport.send(ucall, provider=case.provider, timeout=10,
                                         connect_timeout=5, stream=False)
    assert resp.status == 200
    models = provider.adapter.parse_models(await resp.read())
    assert models and all(isinstance(m, str) and m for m in models)
