"""The pipeline through the application object, in-process: every endpoint, streamed
and not, the headers every answer carries, the rows it leaves, and the refusals
(authentication, bad input, limits, budgets) in each endpoint's own shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.inprocess.app_client import InProcessGateway

CHAT = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
ROWS = (
    "SELECT q.route, q.model, q.provider, q.stream, q.status_code, r.prompt_tokens, "
    "r.completion_tokens, r.finish_reason FROM requests q JOIN responses r "
    "ON r.request_id = q.id WHERE q.request_id = :rid"
)


def sse_data(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


def error_of(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def test_chat_json_headers_and_row(
    gw: InProcessGateway, key: str, mock: MockUpstream
) -> None:
    r = await gw.post("/v1/chat/completions", CHAT, key, **{"x-request-id": "inproc-chat-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hello there"
    assert r.headers["x-request-id"] == "inproc-chat-1"
    assert r.headers["x-llmrelay-provider"] == "up"
    assert r.headers["x-llmrelay-model"] == "gpt-4o-mini"
    assert r.headers["x-llmrelay-attempts"] == "1"
    assert float(r.headers["x-llmrelay-overhead-ms"]) >= 0
    assert mock.last_request.path == "/v1/chat/completions"
    assert mock.last_request.headers["authorization"] == "Bearer upstream-secret-key-123"
    rows = await gw.wait_rows(ROWS, 1, rid="inproc-chat-1")
    route, model, provider, stream, status, prompt, completion, finish = rows[0]
    assert (route, model, provider, bool(stream), status) == (
        "/v1/chat/completions",
        "up/gpt-4o-mini",
        "up",
        False,
        200,
    )
    assert completion == body["usage"]["completion_tokens"] and prompt > 0
    assert finish == "stop"
    logged = [orjson.loads(line) for line in gw.log_file.read_bytes().splitlines()]
    assert any(entry.get("request_id") == "inproc-chat-1" for entry in logged)


async def test_chat_stream(gw: InProcessGateway, key: str) -> None:
    body = {
        **CHAT,
        "messages": [{"role": "user", "content": "one two three"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = await gw.post("/v1/chat/completions", body, key, **{"x-request-id": "inproc-stream-1"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-llmrelay-provider"] == "up"
    events = sse_data(r.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    rows = await gw.wait_rows(ROWS, 1, rid="inproc-stream-1")
    assert bool(rows[0][3]) is True and rows[0][4] == 200 and rows[0][6] == 3


async def test_a_bug_in_the_stream_relay_still_ends_the_stream_and_leaves_the_row(
    gw: InProcessGateway, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a GatewayError (a bug of ours or a plug-in's): the client still gets an error
    event and the end of the stream, and the row says 500; before, the relay raised and
    the stream stopped with no end."""
    import llmrelay.stream_relay as relay

    def broken(*args: Any) -> list[bytes]:
        raise RuntimeError("boom")

    monkeypatch.setattr(relay, "read_block", broken)
    body = {**CHAT, "stream": True}
    r = await gw.post("/v1/chat/completions", body, key, **{"x-request-id": "inproc-bug-1"})
    assert r.status_code == 200
    events = sse_data(r.text)
    error = orjson.loads(events[-2] if events[-1] == "[DONE]" else events[-1])["error"]
    assert error["code"] == "internal_error" and "boom" not in error["message"]
    rows = await gw.wait_rows(ROWS, 1, rid="inproc-bug-1")
    assert rows[0][4] == 500


async def test_builtin_mock_provider_needs_no_upstream(
    gw: InProcessGateway, key: str, mock: MockUpstream
) -> None:
    before = len(mock.requests)
    r = await gw.post("/v1/chat/completions", {**CHAT, "model": "mock/echo"}, key)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    assert r.headers["x-llmrelay-provider"] == "mock"
    assert len(mock.requests) == before


async def test_messages_json_and_stream(gw: InProcessGateway, key: str, mock: MockUpstream) -> None:
    body = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi claude"}],
    }
    r = await gw.post(
        "/v1/messages", body, None, **{"x-api-key": key, "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["text"] == "hi claude"
    assert r.headers["x-llmrelay-provider"] == "claude"
    assert mock.last_request.path == "/v1/messages"
    streamed = await gw.post(
        "/v1/messages",
        {**body, "stream": True},
        None,
        **{"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert streamed.status_code == 200
    kinds = [
        line.removeprefix("event: ")
        for line in streamed.text.split("\n")
        if line.startswith("event: ")
    ]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


async def test_messages_translated_to_an_openai_family(gw: InProcessGateway, key: str) -> None:
    body = {
        "model": "up/gpt-4o-mini",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "translate me"}],
    }
    r = await gw.post("/v1/messages", body, None, **{"x-api-key": key})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "translate me"
    assert r.json()["usage"]["output_tokens"] == 2


async def test_responses_json_and_stream(gw: InProcessGateway, key: str) -> None:
    body = {"model": "up/gpt-4o-mini", "input": "hello responses api"}
    r = await gw.post("/v1/responses", body, key)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["object"] == "response" and answer["status"] == "completed"
    texts = [
        c["text"] for item in answer["output"] if item["type"] == "message" for c in item["content"]
    ]
    assert texts == ["hello responses api"]
    assert r.headers["x-llmrelay-provider"] == "up"
    streamed = await gw.post("/v1/responses", {**body, "stream": True}, key)
    assert streamed.status_code == 200
    events = [orjson.loads(e) for e in sse_data(streamed.text)]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "hello responses api"


async def test_embeddings(gw: InProcessGateway, key: str, mock: MockUpstream) -> None:
    r = await gw.post(
        "/v1/embeddings", {"model": "up/text-embedding-3-small", "input": ["a", "b"]}, key
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "list" and [d["index"] for d in data["data"]] == [0, 1]
    assert all(isinstance(v, float) for d in data["data"] for v in d["embedding"])
    assert mock.last_request.path == "/v1/embeddings"
    assert r.headers["x-llmrelay-provider"] == "up"


async def test_embeddings_refused_by_a_family_without_them(gw: InProcessGateway, key: str) -> None:
    r = await gw.post("/v1/embeddings", {"model": "claude/claude-sonnet-4-5", "input": "x"}, key)
    assert r.status_code == 400, r.text
    assert "embeddings" in error_of(r.json())["message"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing or invalid Authorization header"),
        ({"authorization": "Basic abc"}, "missing or invalid Authorization header"),
        ({"authorization": "Bearer sk-relay-not-a-real-key"}, "invalid API key"),
    ],
)
async def test_auth_errors(gw: InProcessGateway, headers: dict[str, str], message: str) -> None:
    r = await gw.post("/v1/chat/completions", CHAT, None, **headers)
    assert r.status_code == 401
    err = error_of(r.json())
    assert err["message"] == message and err["type"] == "invalid_request_error"  # as OpenAI
    assert r.headers["x-request-id"]


async def test_auth_error_in_anthropic_shape(gw: InProcessGateway) -> None:
    r = await gw.post(
        "/v1/messages",
        {
            "model": "claude/claude-sonnet-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        None,
    )
    assert r.status_code == 401
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (b"{not json", "request body is not valid JSON", None),
        (b"[1, 2]", "request body must be a JSON object", None),
        (
            {"messages": [{"role": "user", "content": "x"}]},
            "missing required field: model",
            "model",
        ),
        (
            {"model": "up/gpt-4o-mini", "messages": []},
            "field messages must be a non-empty array",
            "messages",
        ),
        (
            {"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]},
            "unknown model: gpt-99",
            "model",
        ),
    ],
)
async def test_bad_input(
    gw: InProcessGateway, key: str, body: Any, message: str, param: str | None
) -> None:
    r = await gw.post("/v1/chat/completions", body, key)
    assert r.status_code in (400, 404), r.text
    err = error_of(r.json())
    assert err["message"].startswith(message) and err["param"] == param


async def test_unknown_route_and_wrong_method(gw: InProcessGateway) -> None:
    missing = await gw.client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.headers["x-request-id"]
    wrong = await gw.client.get("/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


async def test_upstream_error_passes_status_and_counts_attempts(
    gw: InProcessGateway, key: str, mock: MockUpstream
) -> None:
    mock.script(Behaviour(status=400, error_message="scripted refusal"))
    r = await gw.post("/v1/chat/completions", CHAT, key, **{"x-request-id": "inproc-err-1"})
    assert r.status_code == 400
    assert "scripted refusal" in error_of(r.json())["message"]
    assert r.headers["x-llmrelay-attempts"] == "1"
    rows = await gw.wait_rows(ROWS, 1, rid="inproc-err-1")
    assert rows[0][4] == 400


async def test_rate_limit_admits_exactly_the_limit(gw: InProcessGateway) -> None:
    key = await gw.create_key("inproc-rpm2", rpm=2)
    answers = [await gw.post("/v1/chat/completions", CHAT, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    err = error_of(answers[2].json())
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert answers[2].headers["x-ratelimit-limit-requests"] == "2"
    assert answers[2].headers["x-ratelimit-remaining-requests"] == "0"
    assert int(answers[2].headers["retry-after"]) >= 1


async def test_budget_refuses_once_spent(gw: InProcessGateway) -> None:
    key = await gw.create_key("inproc-budget", budget=Decimal("0.000001"))
    first = await gw.post("/v1/chat/completions", CHAT, key)
    assert first.status_code == 200, first.text
    assert Decimal(first.headers["x-llmrelay-cost-usd"]) > 0
    refused = await gw.post("/v1/chat/completions", CHAT, key)
    assert refused.status_code in (402, 429), refused.text
    err = error_of(refused.json())
    assert err["code"] == "budget_exceeded"
    assert err["message"].startswith("monthly budget exceeded: key 'inproc-budget'")


async def test_fallback_past_a_target_without_embeddings(
    gw: InProcessGateway, key: str, mock: MockUpstream
) -> None:
    """docs/routing.md: ``on_errors: ["*"]`` falls back past any failed attempt, so a
    target whose family cannot serve the call is one more attempt outcome."""
    config = {
        "strategy": "fallback",
        "on_errors": ["*"],
        "targets": [
            {"provider": "claude", "model": "claude-sonnet-4-5"},
            {"provider": "up", "model": "text-embedding-3-small"},
        ],
    }
    r = await gw.post(
        "/v1/embeddings",
        {"model": "any", "input": "x"},
        key,
        **{"x-llmrelay-config": orjson.dumps(config).decode()},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-llmrelay-provider"] == "up"
    assert r.json()["object"] == "list"
    assert [q.path for q in mock.requests] == ["/v1/embeddings"]  # nothing sent to claude
