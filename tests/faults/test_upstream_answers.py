"""What comes back from upstream, hostile or broken, through a real gateway process.

Secrets echoed in upstream errors (issue 8 item 2), upstreams refusing llmrelay's own
credentials (3), oversized answers and stream events (14), 2xx bodies that are not the
provider's answer (15), and streams cut by a broken transfer encoding (16). The clients
are the official ``openai`` / ``anthropic`` SDKs where they apply, httpx where the test
needs the raw wire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess, free_port

#: Provider credentials as configured; none of them may ever reach a client.
UP_KEY = "upstream-exact-secret-7788"  # not key-shaped: only the exact-string net finds it
ANT_KEY = "ant-exact-secret-0042-zz"
OAI_KEY = "sk-proj-abcdefghijklmnop1234"
WRONG_KEY = "wrong-credential-314159"
SECRETS = (UP_KEY, ANT_KEY, OAI_KEY, WRONG_KEY)
#: A key-shaped string no provider holds (the shape net).
FOREIGN = "sk-live-0123456789abcdefXYZ"

BODY_CAP = 1024 * 1024
EVENT_CAP = 64 * 1024
CHAT = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def locked() -> Iterator[MockUpstream]:
    """A mock that accepts only its own key (the gateway holds a wrong one for it)."""
    with MockUpstream(api_key="the-right-key-271828") as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, locked: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config: dict[str, Any] = {
        "max_upstream_body_bytes": BODY_CAP,
        "max_upstream_event_bytes": EVENT_CAP,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": UP_KEY,
            },
            {"name": "oai", "type": "openai", "base_url": upstream.base_url, "api_key": OAI_KEY},
            {"name": "ant", "type": "anthropic", "base_url": upstream.base_url, "api_key": ANT_KEY},
            {
                "name": "locked",
                "type": "openai_compatible",
                "base_url": locked.base_url,
                "api_key": WRONG_KEY,
            },
            {
                "name": "dead",
                "type": "openai_compatible",
                "api_key": "x",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "connect_timeout": 2,
            },
        ],
    }
    gateway = GatewayProcess(tmp_path_factory.mktemp("upstream-answers"), config)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("answers")


def oai(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def post(
    gw: GatewayProcess, key: str, body: object, path: str = "/v1/chat/completions"
) -> httpx.Response:
    return httpx.post(
        gw.url + path,
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def assert_clean(text: str) -> None:
    for secret in (*SECRETS, FOREIGN):
        assert secret not in text, f"{secret} leaked: {text[:500]}"


def wait_row(gw: GatewayProcess, request_id: str) -> tuple[Any, ...]:
    """The (status, error_type, error_message, attempts) of a call, once written."""
    deadline = time.monotonic() + 30
    sql = (
        "SELECT r.status_code, p.error_type, p.error_message, r.attempts FROM requests r "
        f"JOIN responses p ON p.request_id = r.id WHERE r.request_id = '{request_id}'"
    )
    while time.monotonic() < deadline:
        rows = gw.db_query(sql)
        if rows:
            status, error_type, message, attempts = rows[0]
            if isinstance(attempts, str):
                attempts = orjson.loads(attempts)
            return status, error_type, message, attempts
        time.sleep(0.1)
    raise AssertionError(f"no row for {request_id}")


def stream_text(
    gw: GatewayProcess,
    key: str,
    body: dict[str, Any],
    path: str = "/v1/chat/completions",
    **headers: str,
) -> str:
    with httpx.stream(
        "POST",
        gw.url + path,
        content=orjson.dumps(body),
        timeout=30,
        headers={"authorization": f"Bearer {key}", **headers},
    ) as resp:
        assert resp.status_code == 200
        return resp.read().decode()


# -- item 2: secrets in upstream errors -----------------------------------------------------

ECHO = f"Incorrect API key provided: {UP_KEY} / {ANT_KEY} / {OAI_KEY} (see also {FOREIGN})"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
def test_upstream_error_echoing_credentials_is_redacted(
    gw: GatewayProcess, key: str, mock: MockUpstream, path: str
) -> None:
    """Upstream 400 quoting provider keys (3 endpoints) -> 400, keys masked in answer, row, log"""
    mock.script(Behaviour(status=400, error_message=ECHO))
    body: dict[str, Any] = {
        "model": "oai/gpt-4o-mini"
        if path == "/v1/responses"
        else "up/text-embedding-3-small"
        if "embed" in path
        else "up/gpt-4o-mini"
    }
    body.update(
        {
            "/v1/chat/completions": {"messages": [{"role": "user", "content": "x"}]},
            "/v1/embeddings": {"input": "x"},
            "/v1/responses": {"input": "x"},
        }[path]
    )
    r = post(gw, key, body, path)
    assert r.status_code == 400, r.text
    assert_clean(r.text + str(r.headers))
    assert "Incorrect API key provided" in r.json()["error"]["message"]
    assert "[redacted]" in r.json()["error"]["message"]
    status, _, message, attempts = wait_row(gw, r.headers["x-request-id"])
    assert status == 400
    assert_clean(str(message) + orjson.dumps(attempts).decode())
    assert_clean(gw.interactions())
    assert_clean((gw.workdir / "stderr.log").read_text())  # the application log too


def test_upstream_error_via_sdk_and_header_is_redacted(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Upstream 429 quoting its key in message and header -> SDK error and headers key-free"""
    mock.script(Behaviour(status=429, error_message=ECHO, headers={"retry-after": UP_KEY}))
    with pytest.raises(openai.RateLimitError) as caught:
        oai(gw, key).chat.completions.create(**CHAT)  # type: ignore[call-overload]
    exc = caught.value
    assert_clean(str(exc) + orjson.dumps(exc.body).decode() + str(dict(exc.response.headers)))
    assert exc.response.headers.get("retry-after", "").endswith("[redacted]")


def test_anthropic_error_echoing_key_is_redacted(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic 400 quoting its x-api-key on /v1/messages -> Anthropic-shaped 400, key masked"""
    mock.script(Behaviour(status=400, error_message=f"invalid x-api-key: {ANT_KEY}"))
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="ant/claude-sonnet-4-5",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
        )
    assert_clean(str(caught.value) + orjson.dumps(caught.value.body).decode())
    assert "[redacted]" in str(caught.value)


def test_count_tokens_pass_through_errors_are_redacted(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic count_tokens 400 / 401 quoting its key -> 400 / 502, key masked, Anthropic shape"""
    body = {"model": "ant/claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}
    for status, expected in ((400, 400), (401, 502)):
        mock.script(Behaviour(status=status, error_message=f"invalid x-api-key: {ANT_KEY}"))
        r = httpx.post(
            gw.url + "/v1/messages/count_tokens",
            json=body,
            timeout=30,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
        assert r.status_code == expected, r.text
        assert r.json()["type"] == "error" and "[redacted]" in r.text
        assert_clean(r.text + str(r.headers))


def test_stream_error_events_are_redacted(gw: GatewayProcess, key: str, mock: MockUpstream) -> None:
    """Mid-stream error events quoting keys (3 stream formats) -> error events, keys masked"""
    mock.script(
        Behaviour(
            error_after_chunks=2,
            error_type="overloaded_error",
            error_message=f"overloaded; key {ANT_KEY}",
        )
    )
    text = stream_text(
        gw,
        key,
        {
            "model": "ant/claude-sonnet-4-5",
            "max_tokens": 16,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        "/v1/messages",
    )
    assert "event: error" in text and "[redacted]" in text
    assert_clean(text)

    mock.script(
        Behaviour(
            error_after_chunks=2, error_code="server_error", error_message=f"broken for {OAI_KEY}"
        )
    )
    text = stream_text(
        gw, key, {"model": "oai/gpt-4o-mini", "input": "x", "stream": True}, "/v1/responses"
    )
    assert '"type":"error"' in text.replace(" ", "") and "[redacted]" in text
    assert_clean(text)

    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "hel"}, "finish_reason": None}],
    }
    raw = (
        b"data: "
        + orjson.dumps(chunk)
        + b"\n\ndata: "
        + orjson.dumps(
            {"error": {"message": f"upstream died; key {UP_KEY}", "type": "server_error"}}
        )
        + b"\n\n"
    )
    mock.script(Behaviour(raw_body=raw.decode()))
    text = stream_text(gw, key, {**CHAT, "stream": True})
    assert '"content":"hel"' in text and "[redacted]" in text and "[DONE]" not in text
    assert_clean(text)


# -- item 3: the provider refuses llmrelay's own credentials --------------------------------


def test_upstream_rejecting_gateway_credentials_is_502(
    gw: GatewayProcess, key: str, locked: MockUpstream
) -> None:
    """Provider 401 to llmrelay's own key -> 502 upstream_authentication_failed, unhealthy"""
    locked.reset()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=2, timeout=30)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="locked/gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    exc = caught.value
    assert not isinstance(exc, openai.AuthenticationError)  # the client's key is fine
    assert exc.status_code == 502
    assert exc.response.headers["x-should-retry"] == "false"
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    assert error["code"] == "upstream_authentication_failed"
    assert "your own API key is fine" in error["message"]
    assert_clean(str(exc) + orjson.dumps(exc.body).decode())
    assert len(locked.requests) == 1  # neither llmrelay nor the SDK tried again
    ready = httpx.get(gw.url + "/health/ready", timeout=10).json()
    assert ready["providers"]["locked"]["status"] == "error"
    assert_clean(orjson.dumps(ready).decode())


# -- item 14: upstream answer size ------------------------------------------------------------


def _peak_rss_kib(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_huge_upstream_answer_is_502_and_memory_bounded(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Upstream 200 of 128 MB over a 1 MiB cap -> 502 upstream_response_too_large, RSS +<64 MB

    Also a 2 MB answer with a content-length: refused before it is read.
    """
    before = _peak_rss_kib(gw)
    mock.script(Behaviour(raw_body="x" * 65536, raw_body_repeat=2048))  # 128 MiB, chunked
    r = post(gw, key, CHAT)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_response_too_large"
    assert "1 MiB" in r.json()["error"]["message"]
    assert _peak_rss_kib(gw) - before < 64 * 1024
    status, _, _, attempts = wait_row(gw, r.headers["x-request-id"])
    assert status == 502 and attempts[-1]["error"] == "upstream_response_too_large"

    mock.script(Behaviour(raw_body="y" * (2 * BODY_CAP)))  # one body with content-length
    r = post(gw, key, CHAT)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_response_too_large"


def test_stream_without_event_end_is_cut_at_event_cap(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Stream of 64 MB that never ends an event -> upstream_response_too_large event, RSS bounded"""
    before = _peak_rss_kib(gw)
    mock.script(Behaviour(raw_body="data: " + "z" * 65536, raw_body_repeat=1024))
    text = stream_text(gw, key, {**CHAT, "stream": True})
    events = [e for e in text.split("\n\n") if e.startswith("data: ")]
    assert len(events) == 1, text[:300]
    assert orjson.loads(events[0][6:])["error"]["code"] == "upstream_response_too_large"
    assert _peak_rss_kib(gw) - before < 64 * 1024


# -- item 15: a 2xx that is not the provider's answer --------------------------------------


@pytest.mark.parametrize(
    ("model", "path", "raw"),
    [
        ("up/gpt-4o-mini", "/v1/chat/completions", "<html><body>Bad gateway</body></html>"),
        ("up/gpt-4o-mini", "/v1/chat/completions", '{"object": "chat.completion"}'),
        ("up/gpt-4o-mini", "/v1/chat/completions", "[1, 2, 3]"),
        (
            "up/gpt-4o-mini",
            "/v1/chat/completions",
            '{"error": {"message": "quota exhausted for ' + UP_KEY + '"}}',
        ),
        ("up/text-embedding-3-small", "/v1/embeddings", '{"object": "list"}'),
        ("oai/gpt-4o-mini", "/v1/responses", '{"id": "resp_1"}'),
        ("ant/claude-sonnet-4-5", "/v1/responses", '{"type": "not-a-message"}'),
        ("up/gpt-4o-mini", "/v1/responses", "not json"),
    ],
)
def test_2xx_that_is_not_the_providers_answer_is_502(
    gw: GatewayProcess, key: str, mock: MockUpstream, model: str, path: str, raw: str
) -> None:
    """Upstream 200 of garbage or wrong-shape JSON -> 502 upstream_invalid_response, row says so"""
    mock.script(Behaviour(raw_body=raw))
    body: dict[str, Any] = {"model": model}
    if path in ("/v1/embeddings", "/v1/responses"):
        body["input"] = "x"
    else:
        body["messages"] = [{"role": "user", "content": "x"}]
    r = post(gw, key, body, path)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_invalid_response"
    assert "was not passed on" in error["message"]
    assert_clean(r.text)
    status, error_type, message, attempts = wait_row(gw, r.headers["x-request-id"])
    assert status == 502 and error_type == "api_error"
    assert attempts[-1]["status"] == 502
    assert attempts[-1]["error"] == "upstream_invalid_response"
    assert_clean(str(message) + (gw.workdir / "stderr.log").read_text())


def test_2xx_that_is_not_an_answer_falls_back(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Fallback route whose first target answers 200 garbage -> 200 from the next target"""
    mock.script(Behaviour(raw_body="<html>maintenance</html>"))
    # A model of its own: the 502s of the tests before count toward up/gpt-4o-mini's circuit.
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "up", "model": "gpt-4o-fb"},
            {"provider": "oai", "model": "gpt-4o-mini"},
        ],
    }
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json=CHAT,
        timeout=30,
        headers={
            "authorization": f"Bearer {key}",
            "x-llmrelay-config": orjson.dumps(config).decode(),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hi"
    assert r.headers["x-llmrelay-provider"] == "oai"
    _, _, _, attempts = wait_row(gw, r.headers["x-request-id"])
    assert [(a["provider"], a["status"]) for a in attempts] == [("up", 502), ("oai", 200)]
    assert attempts[0]["error"] == "upstream_invalid_response"


def test_anthropic_passthrough_garbage_is_502_in_anthropic_shape(
    gw: GatewayProcess, key: str, mock: MockUpstream
) -> None:
    """Anthropic 200 that is no message (/v1/messages pass-through) -> 502 in Anthropic's shape"""
    mock.script(Behaviour(raw_body='{"hello": "world"}'))
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="ant/claude-sonnet-4-5",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
        )
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "not a message object" in str(caught.value)


# -- item 16: words a client understands -----------------------------------------------------


@pytest.mark.parametrize("fault", [{"corrupt_after_chunks": 2}, {"drop_after_chunks": 2}])
def test_cut_stream_error_event_is_plain_words(
    gw: GatewayProcess, key: str, mock: MockUpstream, fault: dict[str, int]
) -> None:
    """Stream cut by bad chunked encoding / dropped socket -> error event in plain words"""
    # The pause puts the fault after the first chunk has reached the client.
    mock.script(Behaviour.from_dict({**fault, "chunk_delay_ms": 300}))
    text = stream_text(gw, key, {**CHAT, "stream": True})
    events = [e for e in text.split("\n\n") if e.startswith("data: ")]
    error = orjson.loads(events[-1][6:])["error"]
    assert error["code"] == "upstream_unreachable"
    for internal in (
        "ClientPayloadError",
        "TransferEncodingError",
        "ContentLengthError",
        "aiohttp",
        "ServerDisconnected",
        "Error:",
    ):
        assert internal not in error["message"]
    assert error["message"].startswith("upstream up ")
    assert "broke off" in error["message"] or "closed the stream" in error["message"]


def test_unreachable_upstream_message_is_plain_words(gw: GatewayProcess, key: str) -> None:
    """Upstream port refusing connections -> 502 in plain words; library text only in the row"""
    r = post(gw, key, {**CHAT, "model": "dead/gpt-4o-mini"})
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert message == (
        "upstream dead is unreachable: no connection could be made to it (refused or unreachable)"
    )
    _, _, _, attempts = wait_row(gw, r.headers["x-request-id"])
    assert "Connection refused" in attempts[-1]["detail"]  # the socket's words, for the operator
