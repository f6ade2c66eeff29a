"""One provider conformance suite; every provider family opts in by capability.

Each family is configured exactly as a user would (the gateway's settings) against the
real mock upstream on loopback, and every case is a client's HTTP call through the real
pipeline: the application object in-process (``httpx.ASGITransport``, see
``tests/inprocess``), so parsing, routing, the adapter, the transport, translation,
stream framing and error rendering all run as in production. The assertions are on what
an OpenAI client receives. Adding a provider family = one :class:`Case` row with the
capabilities it has (and its config in ``tests/native_providers.py``); a capability it
lacks must be refused with a 400 naming the parameter, never silently ignored.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.inprocess.app_client import InProcessGateway
from tests.native_providers import CHAT_MODELS, native_providers

ALL = frozenset(
    {
        "json_object",
        "json_schema",
        "seed",
        "stop",
        "images",
        "embeddings",
        "models",
        "image_urls",
        "translates",
    }
)


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    #: what the provider can do (see ALL); anything else must be refused by name.
    caps: frozenset[str]
    embedding_model: str | None = None

    def qualified(self, drop_params: bool = False) -> str:
        """The model as a client names it (``drop_params`` picks the twin provider
        configured with ``drop_params: true``)."""
        return f"{self.provider}{DROP if drop_params else ''}/{self.model}"


CASES = [
    Case("gemini", "gemini-2.0-flash", ALL - {"image_urls"}, "text-embedding-004"),
    Case("vertex", "gemini-2.0-flash", ALL - {"image_urls"}, "text-embedding-004"),
    Case(
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        ALL - {"json_object", "json_schema", "seed", "image_urls"},
        "amazon.titan-embed-text-v2:0",
    ),
    Case("azure", "gpt-4o-prod", ALL - {"translates", "models"}, "embed-prod"),
    Case("ollama", "llama3:8b", ALL - {"translates"}, "text-embedding-3-small"),
    Case("anthropic", "claude-sonnet-4-5", ALL - {"seed", "embeddings"}),
]
assert set(CHAT_MODELS) <= {c.provider for c in CASES}
#: suffix of each family's twin provider, configured with ``drop_params: true``
DROP = "-drop"


def cases(*needs: str) -> list[Any]:
    return [pytest.param(c, id=c.provider) for c in CASES if set(needs) <= c.caps]


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    directory = tmp_path_factory.mktemp("conformance")
    families = [
        *native_providers(upstream, directory),
        {
            "name": "anthropic",
            "type": "anthropic",
            "base_url": upstream.base_url,
            "api_key": "sk-ant-test",
        },
    ]
    twins = [{**p, "name": p["name"] + DROP, "drop_params": True} for p in families]
    # Scripted upstream failures must reach the client as they are: no breaker trips.
    config = {
        "providers": [*families, *twins],
        "mock_provider": False,
        "routing": {"circuit_breaker": {"enabled": False}},
    }
    gateway = InProcessGateway(directory / "gw", config)
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture(scope="module")
async def client(gw: InProcessGateway) -> AsyncIterator[httpx.AsyncClient]:
    key = await gw.create_key("conformance")
    gw.client.headers["authorization"] = f"Bearer {key}"
    yield gw.client


async def chat(client: httpx.AsyncClient, model: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/chat/completions", json={**body, "model": model})
    assert r.status_code == 200, r.text
    parsed: dict[str, Any] = r.json()
    return parsed


async def refused(
    client: httpx.AsyncClient, model: str, body: dict[str, Any], status: int = 400
) -> dict[str, Any]:
    """The error a client gets (OpenAI's shape) for a call that must fail."""
    r = await client.post("/v1/chat/completions", json={**body, "model": model})
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def stream(
    client: httpx.AsyncClient, model: str, body: dict[str, Any], usage: bool = False
) -> list[Any]:
    body = {**body, "model": model, "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [
        line.removeprefix("data: ") for line in r.text.split("\n") if line.startswith("data: ")
    ]
    assert events[-1] == "[DONE]"
    return [orjson.loads(e) for e in events[:-1]]


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
            },
        },
    }
]


@pytest.mark.parametrize("case", cases())
async def test_text(client: httpx.AsyncClient, mock: MockUpstream, case: Case) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "sys prompt"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello world"},
        ]
    }
    r = await chat(client, case.qualified(), body)
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
async def test_stream(client: httpx.AsyncClient, case: Case) -> None:
    chunks = await stream(client, case.qualified(), user("one two three"))
    # (Azure leads with a choice-less content-filter chunk whose object is "")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks if c["choices"])
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0].get("role") == "assistant"
    assert "".join(d.get("content") or "" for d in deltas) == "one two three"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    with_usage = await stream(client, case.qualified(), user("one two three"), usage=True)
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("case", cases())
async def test_tools(client: httpx.AsyncClient, case: Case) -> None:
    body = {**user("use the tool"), "tools": TOOLS, "tool_choice": "auto"}
    r = await chat(client, case.qualified(), body)
    choice = r["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup"
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict)
    chunks = await stream(client, case.qualified(), body)
    calls = [
        t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls") or ()
    ]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "lookup"
    arguments = "".join(t["function"].get("arguments") or "" for t in calls)
    assert orjson.loads(arguments) == orjson.loads(call["function"]["arguments"])
    follow = {
        "messages": [
            *body["messages"],
            choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": "42"},
        ],
        "tools": TOOLS,
    }
    again = await chat(client, case.qualified(), follow)
    assert again["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize("case", cases("images"))
async def test_image_inline(client: httpx.AsyncClient, mock: MockUpstream, case: Case) -> None:
    data = base64.b64encode(b"GIF89a" + bytes(10)).decode()
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{data}"}},
    ]
    r = await chat(client, case.qualified(), {"messages": [{"role": "user", "content": content}]})
    assert r["choices"][0]["message"]["content"] == "look"
    assert data in orjson.dumps(mock.last_request.body).decode()


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.provider) for c in CASES if "image_urls" not in c.caps]
)
async def test_image_url_refused_by_name(
    client: httpx.AsyncClient, mock: MockUpstream, case: Case
) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    error = await refused(
        client, case.qualified(), {"messages": [{"role": "user", "content": content}]}
    )
    assert error["param"] == "messages[0].content[0].image_url"
    assert mock.requests == []  # refused before any upstream call


@pytest.mark.parametrize("feature", ["json_object", "json_schema", "seed", "stop"])
@pytest.mark.parametrize("case", cases())
async def test_parameters_honoured_or_refused(
    client: httpx.AsyncClient, case: Case, feature: str
) -> None:
    options: dict[str, dict[str, Any]] = {
        "json_object": {"response_format": {"type": "json_object"}},
        "json_schema": {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            }
        },
        "seed": {"seed": 1},
        "stop": {"stop": ["zzz"]},
    }
    extra = options[feature]
    param = next(iter(extra))
    body = {**user("hello"), **extra, "temperature": 0.5, "top_p": 0.9, "max_tokens": 20}
    if feature in case.caps:
        r = await chat(client, case.qualified(), body)
        content = r["choices"][0]["message"]["content"]
        # (a JSON mode may be emulated, e.g. with a forced tool: then content is JSON)
        assert content == "hello" or (feature.startswith("json") and isinstance(content, str))
        return
    error = await refused(client, case.qualified(), body)
    assert error["param"] == param and case.provider in error["message"]
    assert error["code"] == "unsupported_parameter"
    dropped = await chat(client, case.qualified(drop_params=True), body)
    assert dropped["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize("case", cases("translates"))
async def test_unknown_parameter_refused(client: httpx.AsyncClient, case: Case) -> None:
    error = await refused(client, case.qualified(), {**user("x"), "logit_bias": {"1": 2}})
    assert error["param"] == "logit_bias"


# An upstream 401 is the gateway's own credentials failing, not the client's: a 502.
@pytest.mark.parametrize(
    ("status", "expected"), [(401, 502), (403, 403), (404, 404), (429, 429), (500, 500), (503, 503)]
)
@pytest.mark.parametrize("case", cases())
async def test_errors(
    client: httpx.AsyncClient, mock: MockUpstream, case: Case, status: int, expected: int
) -> None:
    headers = {"retry-after": "3"} if status == 429 else {}
    mock.script(Behaviour(status=status, headers=headers, error_message="scripted failure"))
    r = await client.post("/v1/chat/completions", json={**user("x"), "model": case.qualified()})
    assert r.status_code == expected, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "scripted failure" in error["message"]
    if status == 429:
        assert r.headers["retry-after"] == "3"
    if status == 401:
        assert error["code"] == "upstream_authentication_failed"


@pytest.mark.parametrize("case", cases("embeddings"))
async def test_embeddings(client: httpx.AsyncClient, mock: MockUpstream, case: Case) -> None:
    assert case.embedding_model is not None
    single = "titan" in case.embedding_model
    body = {
        "model": f"{case.provider}/{case.embedding_model}",
        "input": "hello" if single else ["hello", "world"],
    }
    r = await client.post("/v1/embeddings", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "list" and len(data["data"]) == (1 if single else 2)
    assert all(isinstance(v, float) for item in data["data"] for v in item["embedding"])
    assert mock.requests, "the embeddings call did not reach the upstream"


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.provider) for c in CASES if "embeddings" not in c.caps]
)
async def test_embeddings_refused_by_a_family_without_them(
    client: httpx.AsyncClient, mock: MockUpstream, case: Case
) -> None:
    r = await client.post("/v1/embeddings", json={"model": case.qualified(), "input": "x"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "unsupported_endpoint"
    assert mock.requests == []


@pytest.mark.parametrize("case", cases())
async def test_model_list(client: httpx.AsyncClient, mock: MockUpstream, case: Case) -> None:
    r = await client.get("/v1/models", params={"provider": case.provider, "refresh": "true"})
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in r.json()["data"]]
    if "models" not in case.caps:
        assert mock.requests == []  # a family without a list endpoint is not asked
        return
    assert mock.requests, "the list was not fetched from the upstream"
    assert ids and all(
        i.startswith(case.provider + "/") and len(i) > len(case.provider) + 1 for i in ids
    )
