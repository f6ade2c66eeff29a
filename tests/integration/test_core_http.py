"""The HTTP surface of the core gateway, through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

CHAT = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


def post(
    gw: GatewayProcess,
    key: str | None,
    body: object,
    path: str = "/v1/chat/completions",
    **headers: str,
) -> httpx.Response:
    h = dict(headers)
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(gw.url + path, content=content, headers=h, timeout=10)


def error_of(resp: httpx.Response) -> dict[str, object]:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def sse_events(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]


def test_health_and_ready(core_gw: GatewayProcess) -> None:
    r = httpx.get(core_gw.url + "/health")
    assert r.status_code == 200 and r.text == "OK"
    ready = httpx.get(core_gw.url + "/health/ready").json()
    assert ready["status"] == "ready"
    assert ready["database"]["ok"] is True
    assert {"up", "slow", "dead", "mock"} <= set(ready["providers"])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing or invalid Authorization header"),
        ({"authorization": "Basic abc"}, "missing or invalid Authorization header"),
        ({"authorization": "Bearer"}, "missing or invalid Authorization header"),
        ({"authorization": "Bearer sk-relay-not-a-real-key"}, "invalid API key"),
    ],
)
def test_auth_errors(core_gw: GatewayProcess, headers: dict[str, str], message: str) -> None:
    r = httpx.post(core_gw.url + "/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 401
    assert error_of(r)["message"] == message


def test_x_api_key_header_works(core_gw: GatewayProcess, core_key: str) -> None:
    r = httpx.post(core_gw.url + "/v1/chat/completions", json=CHAT, headers={"x-api-key": core_key})
    assert r.status_code == 200, r.text


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
        ({"model": "up/gpt-4o-mini"}, "missing required field: messages", "messages"),
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
        (
            {"model": "up/x", "stream": "yes", "messages": [{"role": "user", "content": "x"}]},
            "field stream must be a boolean",
            "stream",
        ),
    ],
)
def test_bad_requests(
    core_gw: GatewayProcess,
    core_key: str,
    mock: MockUpstream,
    body: object,
    message: str,
    param: str | None,
) -> None:
    r = post(core_gw, core_key, body)
    assert r.status_code == 400
    err = error_of(r)
    assert str(err["message"]).startswith(message)
    assert err["param"] == param
    assert mock.requests == []  # nothing reached the provider


def test_body_too_large(core_gw: GatewayProcess, core_key: str) -> None:
    big = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70000}]}
    r = post(core_gw, core_key, big)
    assert r.status_code == 413
    assert "exceeds the limit" in str(error_of(r)["message"])


def test_key_restricted_to_models(core_gw: GatewayProcess, mock: MockUpstream) -> None:
    key = core_gw.create_key("only-mini", models=["gpt-4o-mini"])
    assert post(core_gw, key, {**CHAT, "model": "gpt-4o-mini"}).status_code == 200
    r = post(core_gw, key, {**CHAT, "model": "my-gpt4"})
    assert r.status_code == 403
    assert error_of(r)["type"] == "permission_error"
    models = httpx.get(
        core_gw.base_url + "/models", headers={"authorization": f"Bearer {key}"}
    ).json()
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini"]


def test_chat_non_stream_relays_upstream_bytes(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    r = post(core_gw, core_key, CHAT, **{"x-request-id": "my-trace-42"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hello there"
    assert body["usage"]["total_tokens"] == 4
    assert r.headers["x-request-id"] == "my-trace-42"
    assert float(r.headers["x-llmrelay-overhead-ms"]) >= 0
    assert r.headers["x-llmrelay-provider"] == "up"
    sent = mock.last_request
    assert sent.headers["authorization"] == "Bearer upstream-secret-key-123"
    assert core_key not in str(sent.headers)
    assert sent.body["model"] == "gpt-4o-mini"


def test_model_resolution_routes_and_aliases(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    assert post(core_gw, core_key, {**CHAT, "model": "gpt-4o-mini"}).status_code == 200
    assert mock.last_request.body["model"] == "gpt-4o-mini"
    assert post(core_gw, core_key, {**CHAT, "model": "my-gpt4"}).status_code == 200
    assert mock.last_request.body["model"] == "gpt-4"
    r = post(core_gw, core_key, {**CHAT, "model": "mock/echo"})
    assert r.json()["choices"][0]["message"]["content"] == "hello there"


def test_client_cannot_redirect_upstream(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    body = {**CHAT, "base_url": "http://evil.invalid", "api_key": "stolen"}
    r = post(
        core_gw,
        core_key,
        body,
        **{"x-llmrelay-base-url": "http://evil.invalid", "host": "evil.invalid"},
    )
    assert r.status_code == 200
    assert mock.last_request.headers["authorization"] == "Bearer upstream-secret-key-123"


def test_stream_relays_and_hides_injected_usage(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    r = post(core_gw, core_key, {**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "hello there"
    assert all(c["choices"] for c in chunks), "usage-only chunk must not reach this client"
    assert mock.last_request.body["stream_options"] == {"include_usage": True}


def test_stream_usage_when_client_asks(core_gw: GatewayProcess, core_key: str) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(post(core_gw, core_key, body).text)
    usage_chunk = orjson.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 4


def test_upstream_errors_pass_through(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    mock.script(Behaviour(status=429, error_message="slow down", headers={"retry-after": "7"}))
    r = post(core_gw, core_key, CHAT)
    assert r.status_code == 429
    assert error_of(r)["message"] == "slow down"
    assert r.headers["retry-after"] == "7"
    mock.script(Behaviour(status=500, error_message="boom"))
    r = post(core_gw, core_key, CHAT)
    assert r.status_code == 500 and error_of(r)["message"] == "boom"
    mock.script(Behaviour(status=400, error_message="bad temperature"))
    r = post(core_gw, core_key, CHAT)
    assert r.status_code == 400 and error_of(r)["message"] == "bad temperature"


def test_unreachable_upstream_is_502(core_gw: GatewayProcess, core_key: str) -> None:
    r = post(core_gw, core_key, {**CHAT, "model": "dead/gpt-4o-mini"})
    assert r.status_code == 502
    assert "unreachable" in str(error_of(r)["message"])


def test_upstream_timeout_is_504(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    mock.script(Behaviour(delay_ms=1500))
    r = post(core_gw, core_key, {**CHAT, "model": "slow/gpt-4o-mini"})
    assert r.status_code == 504
    assert error_of(r)["type"] == "timeout"


def test_cut_stream_ends_with_error_event_and_no_done(
    core_gw: GatewayProcess, core_key: str, mock: MockUpstream
) -> None:
    mock.script(Behaviour(drop_after_chunks=2))
    r = post(core_gw, core_key, {**CHAT, "stream": True})
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert "error" in orjson.loads(events[-1])


def test_embeddings_and_models(core_gw: GatewayProcess, core_key: str) -> None:
    r = post(
        core_gw,
        core_key,
        {"model": "up/text-embedding-3-small", "input": ["a", "b"]},
        path="/v1/embeddings",
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    r = post(core_gw, core_key, {"model": "up/text-embedding-3-small"}, path="/v1/embeddings")
    assert r.status_code == 400 and error_of(r)["param"] == "input"
    auth = {"authorization": f"Bearer {core_key}"}
    ids = [m["id"] for m in httpx.get(core_gw.base_url + "/models", headers=auth).json()["data"]]
    assert {"gpt-4o-mini", "my-gpt4", "mock/echo"} <= set(ids)
    only = httpx.get(core_gw.base_url + "/models?provider=mock", headers=auth).json()["data"]
    assert [m["id"] for m in only] == ["mock/echo"]
    assert httpx.get(core_gw.base_url + "/models?gateway=nope", headers=auth).status_code == 404


def test_unknown_route_and_method(core_gw: GatewayProcess) -> None:
    r = httpx.get(core_gw.url + "/v1/nothing")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = httpx.get(core_gw.url + "/v1/chat/completions")
    assert r.status_code == 405


def test_revoked_key_rejected_within_a_second(core_gw: GatewayProcess) -> None:
    key = core_gw.create_key("to-revoke")
    assert post(core_gw, key, CHAT).status_code == 200
    done = core_gw.cli("keys", "revoke", "to-revoke")
    assert done.returncode == 0, done.stderr
    # The key cache's TTL (1 s here) bounds how long it keeps working; the TTL itself is
    # unit-tested (test_key_store.py). Here: revocation reaches the running gateway, and
    # once refused the key stays refused. 200 polls at 50 ms are a hang guard only.
    for _ in range(200):
        if post(core_gw, key, CHAT).status_code != 200:
            break
        time.sleep(0.05)
    assert [post(core_gw, key, CHAT).status_code for _ in range(3)] == [401] * 3


def test_requests_and_responses_are_recorded(core_gw: GatewayProcess, mock: MockUpstream) -> None:
    key = core_gw.create_key("recorded")
    for _ in range(3):
        assert post(core_gw, key, CHAT).status_code == 200
    post(core_gw, key, {**CHAT, "stream": True, "model": "up/streamed"})
    post(core_gw, key, {"model": "nope"})  # rejected: must leave no row
    key_id = core_gw.db_query("SELECT id FROM api_keys WHERE name = 'recorded'")[0][0]
    deadline = time.monotonic() + 5
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        rows = core_gw.db_query(
            "SELECT r.model, r.status_code, r.stream, s.total_tokens, s.latency_ms "
            "FROM requests r JOIN responses s ON s.request_id = r.id "
            f"WHERE r.api_key_id = '{key_id}' ORDER BY r.created_at"
        )
        if len(rows) >= 4:
            break
        time.sleep(0.05)
    assert len(rows) == 4
    assert [r[0] for r in rows] == ["up/gpt-4o-mini"] * 3 + ["up/streamed"]
    assert all(r[1] == 200 and r[3] == 4 for r in rows)
    assert rows[3][2] in (True, 1)
    log = core_gw.interactions()
    assert '"key_name":"recorded"' in log
    assert key not in log and "upstream-secret-key-123" not in log


def test_prometheus_metrics(core_gw: GatewayProcess, mock: MockUpstream) -> None:
    key = core_gw.create_key("metered", budget=Decimal("5"))
    assert post(core_gw, key, {**CHAT, "model": "up/metered-model"}).status_code == 200
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        r = httpx.get(core_gw.url + "/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        if 'model="metered-model"' in text:
            break
        time.sleep(0.05)
    assert (
        'llmrelay_requests_total{model="metered-model",provider="up",'
        'route="/v1/chat/completions",status="200"} 1.0'
    ) in text
    assert 'llmrelay_tokens_total{kind="prompt",model="metered-model",provider="up"} 2.0' in text
    assert 'llmrelay_key_requests_total{key="metered"} 1.0' in text
    # metrics_key_labels is on here: the remaining budget, as of the last admitted call.
    remaining = re.search(
        r'llmrelay_budget_remaining_usd\{name="metered",period="monthly",scope="key"\} (\S+)', text
    )
    assert remaining is not None and 4.9 < float(remaining.group(1)) <= 5.0
    assert "llmrelay_open_streams 0.0" in text
    assert key not in text
