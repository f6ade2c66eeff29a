"""Fuzz every POST endpoint through the HTTP surface of a real (in-process) gateway.

Three kinds of input, each against the built-in mock and, for the chat-shaped
endpoints, translating adapters (Anthropic, Gemini, Bedrock) in front of the mock
upstream server:

(a) bodies drawn from OpenAI's own request schemas (``schema_strategy``),
(b) known-good bodies with fields of the wrong JSON type, removed, nested deep, or
    holding huge or odd strings (``mutations``),
(c) junk: random bytes, truncated or non-object JSON, wrong content types, nesting
    past the parser's limit.

The outcome must always be a 2xx or a clean 4xx in the endpoint's own error shape, and
a 4xx the gateway produced itself must not have called any upstream (a 4xx relayed
from an upstream that refused the request costs nothing either). Budget: a fixed number
of examples per test, about 20 s in all on a loaded 2-core machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from llmrelay.mock_upstream import MockUpstream
from tests.fuzz import seeds
from tests.fuzz.gateway import (
    CHAT_MODELS,
    LAX_MODELS,
    MAX_BODY,
    InProcessGateway,
    Reply,
    assert_clean,
    translating_config,
)
from tests.fuzz.mutations import ROUTE_CONFIGS, fuzz_settings, json_values, mutated, nested
from tests.fuzz.schema_strategy import request_body

ENDPOINTS = {
    "/v1/chat/completions": (seeds.CHAT, seeds.CHAT_EXTRA, CHAT_MODELS),
    "/v1/embeddings": (
        seeds.EMBEDDINGS,
        ("dimensions", "encoding_format", "user"),
        [
            "mock/text-embedding-3-small",
            "gemini/text-embedding-004",
            "bedrock/amazon.titan-embed-text-v2:0",
            "bedrock/cohere.embed-english-v3",
        ],
    ),
    "/v1/messages": (seeds.MESSAGES, seeds.MESSAGES_EXTRA, CHAT_MODELS),
    "/v1/messages/count_tokens": (seeds.MESSAGES, seeds.MESSAGES_EXTRA, CHAT_MODELS),
    "/v1/responses": (seeds.RESPONSES, seeds.RESPONSES_EXTRA, CHAT_MODELS),
}


@pytest.fixture(scope="module")
def gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    upstream.reset()  # nothing another test scripted (a 500 to come) may answer here
    gw = InProcessGateway(tmp_path_factory.mktemp("fuzz"), translating_config(upstream)).start()
    yield gw
    gw.stop()


def check(path: str, reply: Reply, *, fuzzing: bool = True) -> None:
    if fuzzing:
        event(f"{path} {reply.status}")  # --hypothesis-show-statistics shows the spread
    assert_clean(path, reply)


def encode(body: Any) -> bytes:
    """orjson, or the stdlib for what orjson refuses to write (over 254 levels deep,
    integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


@st.composite
def schema_valid(draw: st.DrawFn, endpoint: str) -> tuple[str, dict[str, Any]]:
    name = {
        "/v1/chat/completions": "chat",
        "/v1/embeddings": "embeddings",
        "/v1/responses": "responses",
    }[endpoint]
    body = draw(request_body(name))
    models = ENDPOINTS[endpoint][2]
    body["model"] = draw(st.sampled_from(models + LAX_MODELS if models is CHAT_MODELS else models))
    return endpoint, body


@fuzz_settings(120)
@given(
    st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]).flatmap(
        schema_valid
    )
)
def test_schema_valid_bodies(gateway: InProcessGateway, case: tuple[str, dict[str, Any]]) -> None:
    path, body = case
    check(path, gateway.post(path, encode(body)))


@st.composite
def mutated_case(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    bodies, extra, models = ENDPOINTS[path]
    body = draw(mutated(bodies, extra))
    if draw(st.integers(min_value=0, max_value=4)):  # mostly a model that exists
        body["model"] = draw(st.sampled_from(models))
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # the streaming paths too
        body["stream"] = True
    return path, body


@fuzz_settings(400)
@given(mutated_case())
def test_type_mutated_bodies(gateway: InProcessGateway, case: tuple[str, dict[str, Any]]) -> None:
    path, body = case
    check(path, gateway.post(path, encode(body)))


JUNK = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b" ",
            b"null",
            b"[]",
            b"[1,2]",
            b'"text"',
            b"42",
            b"{",
            b'{"model":',
            b"\xef\xbb\xbf{}",
            b'{"model": "mock/echo"}\x00',
            b"\xff\xfe{\x00}\x00",
            b'{"model": "\xff\xfe"}',
            b'{"a": NaN}',
            b'{"a": 1e400}',
            b'{"a": "\\ud800"}',
            b"[" * 1100 + b"]" * 1100,
            b'{"a":' * 1100 + b"1" + b"}" * 1100,
            b'{"model":"mock/echo","messages":[{"role":"user","content":"x"}]' + b" " * 10,
            b"x" * (MAX_BODY + 1),
            b"model=mock/echo&messages=x",
        ]
    ),
    st.integers(min_value=129, max_value=1000).map(
        lambda depth: orjson.dumps({"model": "mock/echo", "messages": "DEEP"}).replace(
            b'"DEEP"', b"[" * depth + b"]" * depth
        )
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin-1",
    ]
)


@fuzz_settings(120)
@given(st.sampled_from(sorted(ENDPOINTS)), JUNK, CONTENT_TYPES)
def test_junk_bytes(gateway: InProcessGateway, path: str, raw: bytes, content_type: str) -> None:
    reply = gateway.post(path, raw, {"content-type": content_type})
    check(path, reply)
    assert 400 <= reply.status < 500 and not reply.upstream, reply


#: Raw bytes, as a client may send them (UTF-8, or anything but CR, LF and NUL).
HEADER_VALUES = st.one_of(
    ROUTE_CONFIGS.map(orjson.dumps),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.binary(max_size=40).map(lambda b: b.translate(None, b"\r\n\x00").strip()),
)
HEADERS = st.sampled_from(
    [
        "x-llmrelay-config",
        "x-portkey-config",
        "x-llmrelay-metadata",
        "anthropic-beta",
        "anthropic-version",
    ]
)


@st.composite
def seed_case(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A known-good body as it is, for a model of the endpoint."""
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    bodies, _, models = ENDPOINTS[path]
    body = dict(draw(st.sampled_from(bodies)))
    body["model"] = draw(st.sampled_from(models))
    if path == "/v1/messages/count_tokens":
        body.pop("max_tokens", None)
    return path, body


@fuzz_settings(250)
@given(
    seed_case() | mutated_case(), st.dictionaries(HEADERS, HEADER_VALUES, min_size=1, max_size=2)
)
def test_hostile_headers(
    gateway: InProcessGateway, case: tuple[str, dict[str, Any]], headers: dict[str, bytes]
) -> None:
    path, body = case
    check(path, gateway.post(path, encode(body), headers))


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_deep_nesting_is_a_clean_400(gateway: InProcessGateway, path: str) -> None:
    """A field nested past the bound -> 400 json_too_deep, nothing sent upstream."""
    body = {
        "model": "mock/echo",
        "max_tokens": 5,
        "input": "x",
        "messages": [{"role": "user", "content": nested(300)}],
    }
    reply = gateway.post(path, encode(body))
    check(path, reply, fuzzing=False)
    assert reply.status == 400 and not reply.upstream, reply
    assert b"levels deep" in reply.body
