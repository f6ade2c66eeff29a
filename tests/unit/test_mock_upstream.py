"""The mock upstream must look exactly like OpenAI to the official SDK.

These tests talk to a real loopback server with ``openai.OpenAI``: if the SDK
parses it, gateway integration tests can trust it as a stand-in for OpenAI.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from llmrelay.mock_answers import openai_format as oa
from llmrelay.mock_upstream import Behaviour, BehaviourError, MockUpstream

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def server() -> Iterator[MockUpstream]:
    with MockUpstream(host="127.0.0.1", port=0) as mock:
        yield mock


@pytest.fixture
def mock(server: MockUpstream) -> Iterator[MockUpstream]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(mock: MockUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.base_url, api_key="sk-client", max_retries=0) as c:
        yield c


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def raw_post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Plain stdlib POST, to check bytes on the wire rather than SDK objects."""
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def sse_payloads(raw: bytes) -> list[str]:
    events = raw.decode().split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e.removeprefix("data: ") for e in events[:-1]]


# -- chat completions --------------------------------------------------------------


def test_non_stream_echoes_last_user_message(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "hello there mock"},
    ]
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello there mock"
    assert choice.message.refusal is None
    assert choice.message.tool_calls is None
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 3, 12)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_content_parts_are_concatenated(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "part one, "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "part two"},
            ],
        }
    ]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.choices[0].message.content == "part one, part two"


def test_wire_shape_of_non_stream_response(mock: MockUpstream) -> None:
    status, raw = raw_post(
        mock.base_url + "/chat/completions", {"model": "m", "messages": user("hi")}
    )
    assert status == 200
    body = orjson.loads(raw)
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    choice = body["choices"][0]
    assert choice["logprobs"] is None
    assert choice["message"]["refusal"] is None
    assert set(body["usage"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    }


def test_stream_without_include_usage(client: openai.OpenAI, mock: MockUpstream) -> None:
    text = "one two three four five"
    stream = client.chat.completions.create(model="gpt-4o", messages=user(text), stream=True)
    chunks = list(stream)

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 5  # one per word
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices for c in chunks)  # no usage-only chunk
    assert all(c.usage is None for c in chunks)

    # On the wire: no "usage" key at all, and the stream ends with [DONE].
    status, raw = raw_post(
        mock.base_url + "/chat/completions",
        {"model": "gpt-4o", "messages": user(text), "stream": True},
    )
    assert status == 200
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in orjson.loads(p) for p in payloads[:-1])


def test_stream_with_include_usage(client: openai.OpenAI, mock: MockUpstream) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=user("count these four words"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 4)
    assert last.usage.total_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"

    # On the wire: every earlier chunk carries an explicit "usage": null.
    _, raw = raw_post(
        mock.base_url + "/chat/completions",
        {
            "model": "gpt-4o",
            "messages": user("count these four words"),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    objects = [orjson.loads(p) for p in sse_payloads(raw)[:-1]]
    assert all("usage" in o and o["usage"] is None for o in objects[:-1])
    assert objects[-1]["choices"] == [] and objects[-1]["usage"]["total_tokens"] == 8


def test_scripted_reply_and_usage(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(
        Behaviour(reply="scripted answer", usage={"prompt_tokens": 1000, "completion_tokens": 500})
    )
    completion = client.chat.completions.create(model="gpt-4o", messages=user("ignored"))
    assert completion.choices[0].message.content == "scripted answer"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1000
    assert completion.usage.total_tokens == 1500


# -- tool calls --------------------------------------------------------------------


def test_tool_call_non_stream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=user("please use a tool now"), tools=TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    # Arguments are an instance of the tool's schema, its strings the user's text.
    assert orjson.loads(call.function.arguments) == {"city": "please use a tool now"}


def test_no_tool_call_without_the_word_or_tools(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="gpt-4o", messages=user("hi"), tools=TOOLS)
    assert plain.choices[0].finish_reason == "stop"
    no_tools = client.chat.completions.create(model="gpt-4o", messages=user("use a tool"))
    assert no_tools.choices[0].message.content == "use a tool"


def test_tool_call_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=user("call the tool"), tools=TOOLS, stream=True
    )
    chunks = list(stream)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    head = first.tool_calls[0]
    assert head.index == 0 and head.id and head.id.startswith("call_")
    assert head.type == "function"
    assert head.function is not None and head.function.name == "get_weather"

    fragments = [
        tc.function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
        if tc.function is not None
    ]
    assert len(fragments) >= 3  # the head plus at least two argument fragments
    assert orjson.loads("".join(fragments)) == {"city": "call the tool"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# -- embeddings and models ---------------------------------------------------------


def test_embeddings_float_and_base64(client: openai.OpenAI, mock: MockUpstream) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], encoding_format="float"
    )
    assert floats.object == "list"
    assert floats.model == "text-embedding-3-small"
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in floats.data)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (3, 3)

    # The SDK asks for base64 by default and decodes it: same numbers.
    decoded = client.embeddings.create(model="text-embedding-3-small", input="alpha beta")
    assert mock.last_request.body["encoding_format"] == "base64"
    assert decoded.data[0].embedding == floats.data[0].embedding

    again = client.embeddings.create(model="m", input="alpha beta", encoding_format="float")
    assert again.data[0].embedding == floats.data[0].embedding  # deterministic


def test_embeddings_dimensions_and_norm() -> None:
    vector = oa.embedding_vector("hello", 16)
    assert len(vector) == 16
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-5
    packed = oa.embeddings_response(
        {"model": "m", "input": [[1, 2, 3]], "encoding_format": "base64", "dimensions": 4}
    )
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == oa.embedding_vector([1, 2, 3], 4)
    assert packed["usage"]["prompt_tokens"] == 3


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids
    assert "text-embedding-3-small" in ids


# -- scripted failures -------------------------------------------------------------


def test_scripted_429_raises_rate_limit_error(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(status=429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    err = info.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "7"
    assert err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    # Queue consumed: the next request succeeds.
    ok = client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert ok.choices[0].message.content == "hi"


@pytest.mark.parametrize(
    ("status", "exc_type", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_scripted_error_statuses(
    client: openai.OpenAI,
    mock: MockUpstream,
    status: int,
    exc_type: type[openai.APIStatusError],
    error_type: str,
) -> None:
    mock.script(Behaviour(status=status, error_message="boom"))
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert info.value.status_code == status
    assert info.value.type == error_type
    assert info.value.body == {
        "message": "boom",
        "type": error_type,
        "param": None,
        "code": info.value.code,
    }


def test_script_queue_is_consumed_in_order(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(status=500), {"reply": "second"}, Behaviour(status=429))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    second = client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert second.choices[0].message.content == "second"
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e", input="x")
    assert mock.pending_script == []
    third = client.chat.completions.create(model="gpt-4o", messages=user("back to default"))
    assert third.choices[0].message.content == "back to default"


def test_header_driven_behaviour(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(reply="from queue"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=user("hi"),
            extra_headers={"x-mock-behaviour": '{"status": 429}'},
        )
    replied = client.chat.completions.create(
        model="gpt-4o",
        messages=user("hi"),
        extra_headers={"X-Mock-Behaviour": orjson.dumps({"reply": "from header"}).decode()},
    )
    assert replied.choices[0].message.content == "from header"
    # The header did not consume the queued behaviour.
    queued = client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert queued.choices[0].message.content == "from queue"


def test_invalid_behaviour_header_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown behaviour field"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=user("hi"),
            extra_headers={"x-mock-behaviour": '{"stauts": 429}'},
        )


def test_dropped_stream_raises(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(drop_after_chunks=2))
    received = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=user("a b c d e f g"), stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    stream.close()


def test_dropped_stream_never_sends_done(mock: MockUpstream) -> None:
    mock.script(Behaviour(drop_after_chunks=99))
    with pytest.raises(http.client.IncompleteRead) as info:
        raw_post(
            mock.base_url + "/chat/completions",
            {"model": "m", "messages": user("a b"), "stream": True},
        )
    partial = info.value.partial.decode()
    assert partial.count("data: ") == 4  # role, "a", " b", finish: everything but [DONE]
    assert "[DONE]" not in partial


def test_close_connection_raises_connection_error(
    client: openai.OpenAI, mock: MockUpstream
) -> None:
    mock.script(Behaviour(close_connection=True))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    # The server is still healthy afterwards.
    assert client.chat.completions.create(model="gpt-4o", messages=user("ok")).choices


def test_delay_triggers_client_timeout(client: openai.OpenAI, mock: MockUpstream) -> None:
    # The answer would take 10 s: the client's 0.2 s timeout ends the call, and the
    # error itself shows the client did not wait for the answer (no timing needed).
    mock.script(Behaviour(delay_ms=10_000))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"), timeout=0.2)


def test_chunk_delay_paces_the_stream(client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(Behaviour(chunk_delay_ms=50))
    started = time.monotonic()
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=user("a b c"), stream=True)
    )
    elapsed = time.monotonic() - started
    assert len(chunks) == 5  # role, 3 words, finish
    # A lower bound on sleeps the mock is told to take (4 gaps between 5 chunks, plus
    # one before [DONE]): a slow machine only makes it larger, so it cannot flake.
    assert elapsed >= 0.2


# -- recording and control endpoints -----------------------------------------------


def test_requests_are_recorded(client: openai.OpenAI, mock: MockUpstream) -> None:
    list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=user("hi"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.embeddings.create(model="e", input="x")

    first, second = mock.requests
    assert first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-client"
    assert first.headers["content-type"] == "application/json"
    assert first.body["stream_options"] == {"include_usage": True}
    assert first.body["messages"] == user("hi")
    assert second.path == "/v1/embeddings"
    assert all(name == name.lower() for name in first.headers)


def test_control_endpoints(mock: MockUpstream) -> None:
    root = mock.root_url
    status, raw = raw_post(root + "/_mock/script", [{"status": 429}, {"reply": "x"}])
    assert (status, orjson.loads(raw)) == (200, {"queued": 2})
    status, raw = raw_post(root + "/_mock/script", [{"status": "nope"}])
    assert status == 400

    status, _ = raw_post(mock.base_url + "/chat/completions", {"model": "m", "messages": []})
    assert status == 429  # scripted behaviour applies before validation

    with urllib.request.urlopen(root + "/_mock/requests", timeout=10) as response:
        recorded = orjson.loads(response.read())
    assert [r["path"] for r in recorded] == ["/v1/chat/completions"]  # control calls excluded
    assert recorded[0]["body"] == {"model": "m", "messages": []}

    status, _ = raw_post(root + "/_mock/reset", {})
    assert status == 200
    assert mock.requests == []
    assert mock.pending_script == []


def test_unknown_path_and_bad_requests_use_openai_error_shape(mock: MockUpstream) -> None:
    status, raw = raw_post(mock.base_url + "/nope", {})
    assert status == 404
    assert orjson.loads(raw)["error"]["message"] == "Invalid URL (POST /v1/nope)"
    status, raw = raw_post(mock.base_url + "/chat/completions", {"model": "m"})
    assert status == 400
    assert orjson.loads(raw)["error"]["param"] == "messages"


# -- configuration, lifecycle, async use -------------------------------------------


def test_required_api_key() -> None:
    with MockUpstream(api_key="sk-upstream") as mock:
        with openai.OpenAI(base_url=mock.base_url, api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as info:
                bad.chat.completions.create(model="gpt-4o", messages=user("hi"))
            assert info.value.code == "invalid_api_key"
        with openai.OpenAI(base_url=mock.base_url, api_key="sk-upstream") as good:
            assert good.chat.completions.create(model="gpt-4o", messages=user("hi")).choices


def test_start_stop_lifecycle() -> None:
    mock = MockUpstream()
    with pytest.raises(RuntimeError):
        _ = mock.port
    mock.start()
    assert mock.base_url == f"http://127.0.0.1:{mock.port}/v1"
    with pytest.raises(RuntimeError):
        mock.start()
    mock.stop()
    mock.stop()  # idempotent


def test_start_fails_cleanly_on_busy_port(server: MockUpstream) -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        MockUpstream(port=server.port).start()


async def test_works_from_an_async_test(mock: MockUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=mock.base_url, api_key="x", max_retries=0) as client:
        completion = await client.chat.completions.create(model="m", messages=user("async hi"))
        assert completion.choices[0].message.content == "async hi"
        stream = await client.chat.completions.create(model="m", messages=user("a b"), stream=True)
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
        assert "".join(p or "" for p in pieces) == "a b"


def test_serve_forever_logs_and_stops_on_sigterm() -> None:
    code = "from llmrelay.mock_upstream import serve_forever; serve_forever('127.0.0.1', 0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().strip()
        assert line.startswith("mock upstream listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        assert base_url.endswith("/v1")
        with urllib.request.urlopen(base_url + "/models", timeout=10) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- pure pieces -------------------------------------------------------------------


def test_behaviour_validation() -> None:
    assert Behaviour.from_dict({}) == Behaviour()
    parsed = Behaviour.from_dict({"status": 429, "headers": {"retry-after": 3}})
    assert parsed.headers == {"retry-after": "3"}
    assert Behaviour.from_dict(parsed.to_dict()) == parsed
    bad: object
    for bad in (
        [],
        {"status": 302},
        {"status": True},
        {"delay_ms": -1},
        {"drop_after_chunks": 1.5},
        {"close_connection": "yes"},
        {"usage": 3},
        {"unknown": 1},
    ):
        with pytest.raises(BehaviourError):
            Behaviour.from_dict(bad)


def test_split_words_round_trips() -> None:
    text = "  leading, then  double spaces\nand a newline "
    pieces = oa.split_words(text)
    assert "".join(pieces) == text
    assert len(pieces) == len(text.split())
    assert oa.split_words("") == []


def test_usage_override_keeps_total_consistent() -> None:
    assert oa.usage_block(2, 3, {"completion_tokens": 10})["total_tokens"] == 12
    assert oa.usage_block(2, 3, {"total_tokens": 99})["total_tokens"] == 99


def test_a_request_the_client_abandons_is_recorded_as_aborted(mock: MockUpstream) -> None:
    mock.script(Behaviour(delay_ms=10_000))
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ),
        headers={"content-type": "application/json"},
    )
    for _ in range(250):  # until the mock has the request and waits out delay_ms
        if mock.requests:
            break
        time.sleep(0.02)
    assert mock.requests
    conn.close()
    # Polled at most 5 s (a hang guard), well inside the 10 s delay: an abort seen only
    # when the delay ended would fail here, so no timing of the abort is needed.
    for _ in range(250):
        if mock.aborts:
            break
        time.sleep(0.02)
    assert [a.path for a in mock.aborts] == ["/v1/chat/completions"]
    mock.reset()
    assert mock.aborts == []
