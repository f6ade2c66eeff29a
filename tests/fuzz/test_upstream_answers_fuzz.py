"""Property: any upstream answer, however mangled, translates or ends in a GatewayError.

The response direction of :mod:`tests.fuzz.test_translators`: every adapter's
non-streamed answer parser, stream translator (through its real frame splitter) and
error parser, and the endpoint translations behind them (``/v1/messages`` and
``/v1/responses`` answers built from an OpenAI-compatible upstream's own bytes), are
driven with realistic answers in each provider's wire format (made by
:mod:`llmrelay.mock_answers`, as the mock upstream serves them) with one to three fields
replaced by a value of another type, removed, nested deep, or given a token count of
the kind a hostile upstream sends (``10**30``, ``-5``, ``"many"``, ``true``).

What must hold: a result, or a :class:`GatewayError` (the relay turns it into the
client's error event, the pipeline into a 502 of the client's shape); never an
``AttributeError`` / ``TypeError`` / ``KeyError`` ... that would be a 500 or a stream cut
with no end. And whatever usage comes out is bounded: non-negative ints of at most
:data:`~llmrelay.providers.base.MAX_TOKENS`, what billing may price.
"""

from __future__ import annotations

import binascii
import copy
import json
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.api.messages import MessagesCodec
from llmrelay.api.messages_stream import AnthropicEncoder
from llmrelay.api.responses import ResponsesCodec, ResponsesState
from llmrelay.api.responses_stream import ResponsesEncoder
from llmrelay.asgi import Request
from llmrelay.context import Call
from llmrelay.errors import GatewayError, UpstreamError
from llmrelay.mock_answers import anthropic_format as af
from llmrelay.mock_answers import bedrock_format as bf
from llmrelay.mock_answers import gemini_format as gf
from llmrelay.mock_answers import openai_format as oa
from llmrelay.mock_answers import responses_format as rf
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.aws_eventstream import decode_frame
from llmrelay.providers.azure import AzureOpenAIAdapter
from llmrelay.providers.base import MAX_TOKENS, ChatResult, ProviderSpec, Usage, token_count, tokens
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.chat_output import embeddings_as_base64
from llmrelay.providers.gemini import GeminiAdapter, VertexAdapter
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.providers.openai_responses import ResponsesStreamRelay, responses_result
from llmrelay.sse import DONE
from llmrelay.stream_encoding import encode_all
from tests.fuzz.mutations import fuzz_settings, paths, replacement_values

# -- the adapters, as configured providers ----------------------------------------------

OPENAI = (
    OpenAICompatAdapter(),
    ProviderSpec(name="up", type="openai_compatible", base_url="https://x.test/v1", api_key="k"),
)
AZURE = (
    AzureOpenAIAdapter(),
    ProviderSpec(
        name="azure",
        type="azure",
        base_url="https://r.openai.azure.com/",
        api_key="k",
        api_version="2024-10-21",
    ),
)
ANTHROPIC = (
    AnthropicAdapter(),
    ProviderSpec(name="claude", type="anthropic", base_url="https://a.test/v1", api_key="k"),
)
GEMINI = (
    GeminiAdapter(),
    ProviderSpec(name="gemini", type="gemini", base_url="https://g.test/v1beta", api_key="k"),
)
VERTEX = (
    VertexAdapter(),
    ProviderSpec(
        name="vertex",
        type="vertex",
        base_url="https://v.test/v1",
        api_key=None,
        project="p",
        location="us-central1",
    ),
)
BEDROCK = (
    BedrockAdapter(),
    ProviderSpec(
        name="bedrock",
        type="bedrock",
        base_url="https://bedrock-runtime.us-east-1.amazonaws.com",
        api_key=None,
        region="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    ),
)
#: One frame may buffer this much (the gateway's ``max_upstream_event_bytes`` default).
EVENT_CAP = 1024 * 1024

# -- seeds: realistic answers, text and tool call, per wire format ------------------------

_TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
_CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there world"}]}
_CHAT_TOOL = {
    **_CHAT,
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": _TOOL_SCHEMA}}],
    "tool_choice": "required",
}
_OPENAI_REPLIES = [oa.plan_chat_reply(_CHAT), oa.plan_chat_reply(_CHAT_TOOL)]
_ANTHROPIC_BODIES = [
    {"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "hello world"}]},
    {
        "model": "c",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": "hello world"}],
        "tools": [{"name": "weather", "input_schema": _TOOL_SCHEMA}],
        "tool_choice": {"type": "any"},
    },
]
_ANTHROPIC_REPLIES = [af.plan_reply(b) for b in _ANTHROPIC_BODIES]
_GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there world"}]}]}
_GEMINI_REPLIES = [
    gf.plan_reply(_GEMINI_BODY),
    gf.plan_reply(
        {
            **_GEMINI_BODY,
            "tools": [{"functionDeclarations": [{"name": "weather", "parameters": _TOOL_SCHEMA}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        }
    ),
]
_BEDROCK_BODY = {"messages": [{"role": "user", "content": [{"text": "hello there world"}]}]}
_BEDROCK_REPLIES = [
    bf.plan_reply(_BEDROCK_BODY),
    bf.plan_reply(
        {
            **_BEDROCK_BODY,
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": _TOOL_SCHEMA}}}],
                "toolChoice": {"any": {}},
            },
        }
    ),
]
_RESPONSES_REQUEST = {"model": "m", "input": "hello world"}
_RESPONSES_REPLY = rf.plan(_RESPONSES_REQUEST, reply=None, usage=None, call_id="call_1")

OPENAI_ANSWERS = [
    oa.chat_completion(completion_id="chatcmpl-1", created=1, model="m", reply=r)
    for r in _OPENAI_REPLIES
]
ANTHROPIC_ANSWERS = [
    af.message(message_id="msg_1", model="c", reply=r) for r in _ANTHROPIC_REPLIES
] + [
    {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t", "name": "llmrelay_json_output", "input": {"a": 1}},
        ],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2,
            "output_tokens": 7,
        },
    }
]
GEMINI_ANSWERS = [gf.generate_content(r, "gemini-x", "resp-1", 2) for r in _GEMINI_REPLIES] + [
    {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
]
BEDROCK_ANSWERS = [bf.converse(r) for r in _BEDROCK_REPLIES]
RESPONSES_ANSWERS = [
    rf.response(
        _RESPONSES_REQUEST,
        response_id="resp_1",
        created=1,
        reply=_RESPONSES_REPLY,
        item_id="msg_1",
    )
]


def _events(frames: list[bytes]) -> list[Any]:
    """The JSON payloads of SSE events (the seeds of a stream are its events' objects)."""
    out = []
    for frame in frames:
        for line in frame.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(orjson.loads(line[6:]))
    return out


def _stream(events: list[Any]) -> dict[str, Any]:
    return {"events": events}


OPENAI_STREAMS = [
    _stream(oa.chat_chunks(completion_id="c", created=1, model="m", reply=r, include_usage=True))
    for r in _OPENAI_REPLIES
]
ANTHROPIC_STREAMS = [
    _stream(_events(af.stream_events(message_id="msg_1", model="c", reply=r)))
    for r in _ANTHROPIC_REPLIES
]
GEMINI_STREAMS = [_stream(gf.stream_chunks(r, "gemini-x", "resp-1")) for r in _GEMINI_REPLIES]
BEDROCK_STREAMS = [
    _stream(
        [
            {"event": f.event_type, "body": orjson.loads(f.payload)}
            for f in (decode_frame(raw, "bedrock") for raw in bf.stream_frames(r))
        ]
    )
    for r in _BEDROCK_REPLIES
]
RESPONSES_STREAMS = [
    _stream(
        _events(
            rf.stream_events(
                _RESPONSES_REQUEST,
                response_id="resp_1",
                created=1,
                reply=_RESPONSES_REPLY,
                item_id="msg_1",
            )
        )
    )
]

_VECTOR = [0.25, -0.5, 0.125, 1.0]
OPENAI_EMBEDDINGS: list[dict[str, Any]] = [
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": _VECTOR}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
]
GOOGLE_EMBEDDINGS: list[dict[str, Any]] = [
    {"embedding": {"values": _VECTOR}},
    {"embeddings": [{"values": _VECTOR}, {"values": _VECTOR}]},
    {"predictions": [{"embeddings": {"values": _VECTOR, "statistics": {"token_count": 3}}}]},
]
BEDROCK_EMBEDDINGS: list[dict[str, Any]] = [
    {"embedding": _VECTOR, "inputTextTokenCount": 3},
    {"embeddings": [_VECTOR], "id": "e", "texts": ["hello"]},
    {"embeddings": {"float": [_VECTOR]}, "id": "e", "texts": ["hello"]},
]
ERRORS: list[dict[str, Any]] = [
    {
        "error": {
            "message": "Rate limit reached",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    },
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {
        "error": {
            "code": 429,
            "message": "Resource exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"},
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ],
        }
    },
    {"message": "Too many requests", "__type": "com.amazon#ThrottlingException"},
]

# -- mutations ---------------------------------------------------------------------------

#: Token counts as a hostile or broken upstream reports them (orjson reads an integer
#: past 64 bits, and 1e308, as floats; ``1e999`` is not JSON it accepts).
_COUNTS: list[Any] = [10**30, 2**64 - 1, 2**63, MAX_TOKENS + 1, -5, -(2**63), 1.5, 1e308]
COUNTS = st.sampled_from([*_COUNTS, -0.0, "many", "12", "", True, False, None, [], {}, [3]])


@st.composite
def hostile(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> Any:
    """A seed answer with one to three nodes replaced (any JSON, deep nesting, odd or
    huge strings) or removed, and maybe its token counts set to hostile values."""
    body = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        candidates = list(paths(body))
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(replacement_values)
    if draw(st.booleans()):
        # Keys naming a count (``prompt_tokens``, ``candidatesTokenCount`` ...), found
        # afresh after each change: a count put in place of a parent removes its children.
        counts = [p for p in paths(body) if isinstance(p[-1], str) and "oken" in p[-1]]
        for path in counts:
            parent = body
            try:
                for step in path[:-1]:
                    parent = parent[step]
            except (IndexError, KeyError, TypeError):
                continue  # gone with a parent replaced before
            if isinstance(parent, dict) and path[-1] in parent and draw(st.booleans()):
                parent[path[-1]] = draw(COUNTS)
    return body


def _json(value: Any) -> bytes:
    """The stdlib encoder writes what orjson cannot (deeper than 254 levels)."""
    return json.dumps(value).encode()


def _sse(events: Any, named: bool = False) -> bytes:
    """A mutated stream's events on the wire; ``named`` adds Anthropic's ``event:`` line."""
    out = b""
    for event in events if isinstance(events, list) else [events]:
        kind = event.get("type") if isinstance(event, dict) else None
        if named and isinstance(kind, str) and kind.isidentifier():
            out += b"event: " + kind.encode() + b"\n"
        out += b"data: " + _json(event) + b"\n\n"
    return out


def _frames(events: Any) -> bytes:
    """A mutated Bedrock stream as AWS event-stream frames (valid CRCs, mangled JSON)."""
    out = b""
    for event in events if isinstance(events, list) else [events]:
        name = event.get("event") if isinstance(event, dict) else None
        body = event.get("body", event) if isinstance(event, dict) else event
        headers = {
            ":event-type": str(name)[:100],
            ":content-type": "application/json",
            ":message-type": "event",
        }
        out += bf.encode_frame(headers, _json(body))
    return out


# -- what must hold ----------------------------------------------------------------------


def _bounded(usage: Usage | None) -> None:
    if usage is None:
        return
    for name in usage.__slots__:
        value = getattr(usage, name)
        assert type(value) is int and 0 <= value <= MAX_TOKENS, (name, value)


def _answer(read: Callable[[], ChatResult]) -> ChatResult | None:
    """``read()``'s result (its usage bounded, its body bytes), or None for a GatewayError."""
    try:
        result = read()
    except GatewayError as exc:
        assert exc.status == 502 or isinstance(exc, UpstreamError), exc
        return None
    assert isinstance(result.body, bytes)
    assert result.finish_reason is None or isinstance(result.finish_reason, str)
    _bounded(result.usage)
    return result


async def _no_receive() -> dict[str, Any]:
    raise AssertionError("a codec does no I/O")


def _call(route: str) -> Call:
    scope = {"type": "http", "path": route, "method": "POST", "headers": []}
    call = Call.start(Request(scope, _no_receive), route)
    call.body = dict(_RESPONSES_REQUEST)
    call.codec_state = ResponsesState()
    return call


def _encoded(result: ChatResult) -> None:
    """A chat answer as the ``/v1/messages`` and ``/v1/responses`` clients get it."""
    for codec in (MessagesCodec(), ResponsesCodec()):
        try:
            body = codec.encode(_call(codec.route), result)
        except GatewayError as exc:
            assert exc.status == 502, exc
            continue
        assert isinstance(orjson.loads(body), dict)


def _drive(adapter: Any, spec: ProviderSpec, translator: Any, data: bytes, cut: int) -> list[bytes]:
    """A stream's bytes, in two reads cut at ``cut``, through the family's splitter and
    ``translator``; what it sent before it ended (cleanly or with a GatewayError)."""
    splitter = adapter.splitter(spec, EVENT_CAP)
    out: list[bytes] = []
    try:
        for piece in (data[:cut], data[cut:]):
            for frame in splitter.feed(piece):
                events = translator.feed(frame)
                assert all(isinstance(e, bytes) for e in events)
                out.extend(events)
        out.extend(translator.end())
    except GatewayError:
        pass
    _bounded(translator.usage)
    assert translator.finish_reason is None or isinstance(translator.finish_reason, str)
    assert type(translator.content_chars) is int and translator.content_chars >= 0
    return out


def _client_encoders(events: list[bytes], provider: str) -> None:
    """Chat chunks (a translator's, or an OpenAI-compatible upstream's as relayed) as
    the ``/v1/messages`` and ``/v1/responses`` stream encoders turn them out."""
    for encoder in (
        AnthropicEncoder("m", provider),
        ResponsesEncoder(dict(_RESPONSES_REQUEST), "resp_1", 1, provider),
    ):
        try:
            out = encode_all(encoder, [*events, DONE])
        except GatewayError as exc:
            assert exc.status == 502, exc
            out = [encoder.error_event(exc)]
        assert all(isinstance(e, bytes) for e in out)


# -- non-streamed answers ----------------------------------------------------------------


@fuzz_settings(150)
@given(hostile(OPENAI_ANSWERS))
def test_openai_compatible_answer_parses_or_is_502(answer: Any) -> None:
    raw = _json(answer)
    for adapter, spec in (OPENAI, AZURE):
        result = _answer(partial(adapter.chat_response, spec, raw, "m"))
        if result is not None:
            _encoded(result)


@fuzz_settings(150)
@given(hostile(ANTHROPIC_ANSWERS))
def test_anthropic_answer_parses_or_is_502(answer: Any) -> None:
    adapter, spec = ANTHROPIC
    raw = _json(answer)
    result = _answer(lambda: adapter.chat_response(spec, raw, "c"))
    if result is not None:
        _encoded(result)
    _answer(lambda: adapter.messages_response(spec, raw))


@fuzz_settings(150)
@given(hostile(GEMINI_ANSWERS))
def test_gemini_answer_parses_or_is_502(answer: Any) -> None:
    raw = _json(answer)
    for adapter, spec in (GEMINI, VERTEX):
        result = _answer(partial(adapter.chat_response, spec, raw, "gemini-x"))
        if result is not None:
            _encoded(result)


@fuzz_settings(150)
@given(hostile(BEDROCK_ANSWERS))
def test_bedrock_answer_parses_or_is_502(answer: Any) -> None:
    adapter, spec = BEDROCK
    result = _answer(lambda: adapter.chat_response(spec, _json(answer), "anthropic.claude"))
    if result is not None:
        _encoded(result)


@fuzz_settings(100)
@given(hostile(RESPONSES_ANSWERS))
def test_responses_answer_parses_or_is_502(answer: Any) -> None:
    _answer(lambda: responses_result(_json(answer), "oai"))


@fuzz_settings(100)
@given(
    st.one_of(
        hostile(OPENAI_EMBEDDINGS).map(lambda b: (OPENAI, b)),
        hostile(GOOGLE_EMBEDDINGS).map(lambda b: (GEMINI, b)),
        hostile(GOOGLE_EMBEDDINGS).map(lambda b: (VERTEX, b)),
        hostile(BEDROCK_EMBEDDINGS).map(lambda b: (BEDROCK, b)),
    )
)
def test_embeddings_answer_parses_or_is_502(case: Any) -> None:
    (adapter, spec), answer = case
    result = _answer(lambda: adapter.embeddings_response(spec, _json(answer), "titan-embed"))
    if result is not None and result.extra:
        orjson.loads(embeddings_as_base64(result.body))


@fuzz_settings(150)
@given(hostile(ERRORS), st.sampled_from([400, 401, 403, 429, 500, 503, 529]))
def test_error_answer_is_an_upstream_error(answer: Any, status: int) -> None:
    """An error body of any shape becomes an UpstreamError a client can be sent."""
    raw = _json(answer)
    headers = {"x-amzn-errortype": "ThrottlingException:http://internal", "retry-after": "2"}
    for adapter, spec in (OPENAI, ANTHROPIC, GEMINI, BEDROCK):
        error = adapter.error(spec, status, raw, headers)
        assert isinstance(error, UpstreamError)
        assert isinstance(error.status, int) and isinstance(error.message, str)
        orjson.loads(error.body())
        orjson.dumps(anthropic_error(error))
        assert isinstance(error.retry_may_help, bool)


# -- streams -----------------------------------------------------------------------------


@fuzz_settings(150)
@given(hostile(OPENAI_STREAMS), st.integers(min_value=0, max_value=4000), st.booleans())
def test_openai_compatible_stream_relays_or_ends_in_error(
    stream: Any, cut: int, wants_usage: bool
) -> None:
    events = stream.get("events") if isinstance(stream, dict) else stream
    data = _sse(events) + DONE
    adapter, spec = OPENAI
    out = _drive(adapter, spec, adapter.chat_stream(spec, "m", wants_usage), data, cut)
    _client_encoders(out, spec.name)


@fuzz_settings(150)
@given(hostile(ANTHROPIC_STREAMS), st.integers(min_value=0, max_value=4000), st.booleans())
def test_anthropic_stream_translates_or_ends_in_error(
    stream: Any, cut: int, wants_usage: bool
) -> None:
    events = stream.get("events") if isinstance(stream, dict) else stream
    data = _sse(events, named=True)
    adapter, spec = ANTHROPIC
    out = _drive(adapter, spec, adapter.chat_stream(spec, "c", wants_usage), data, cut)
    _client_encoders(out, spec.name)
    _drive(adapter, spec, adapter.messages_stream(spec, "c"), data, cut)


@fuzz_settings(150)
@given(hostile(GEMINI_STREAMS), st.integers(min_value=0, max_value=4000), st.booleans())
def test_gemini_stream_translates_or_ends_in_error(
    stream: Any, cut: int, wants_usage: bool
) -> None:
    events = stream.get("events") if isinstance(stream, dict) else stream
    adapter, spec = GEMINI
    out = _drive(adapter, spec, adapter.chat_stream(spec, "g", wants_usage), _sse(events), cut)
    _client_encoders(out, spec.name)


@fuzz_settings(150)
@given(hostile(BEDROCK_STREAMS), st.integers(min_value=0, max_value=4000), st.booleans())
def test_bedrock_stream_translates_or_ends_in_error(
    stream: Any, cut: int, wants_usage: bool
) -> None:
    events = stream.get("events") if isinstance(stream, dict) else stream
    adapter, spec = BEDROCK
    translator = adapter.chat_stream(spec, "b", wants_usage)
    out = _drive(adapter, spec, translator, _frames(events), cut)
    _client_encoders(out, spec.name)


@fuzz_settings(100)
@given(hostile(RESPONSES_STREAMS), st.integers(min_value=0, max_value=4000))
def test_responses_stream_relays_or_ends_in_error(stream: Any, cut: int) -> None:
    events = stream.get("events") if isinstance(stream, dict) else stream
    adapter, spec = OPENAI
    _drive(adapter, spec, ResponsesStreamRelay(spec.name, str), _sse(events, named=True), cut)


@fuzz_settings(100)
@given(
    st.sampled_from(["openai", "anthropic", "gemini", "bedrock"]),
    st.binary(max_size=64),
    st.integers(min_value=0, max_value=4000),
    st.integers(min_value=0, max_value=64),
)
def test_stream_bytes_spliced_with_garbage_end_cleanly(
    family: str, garbage: bytes, at: int, cut: int
) -> None:
    """Random bytes spliced into a real stream (a broken proxy): events or a GatewayError."""
    adapter: Any
    if family == "bedrock":
        adapter, spec = BEDROCK
        data = _frames(BEDROCK_STREAMS[1]["events"])
        translator: Any = adapter.chat_stream(spec, "b", True)
    else:
        adapter, spec = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}[family]
        seed = {"openai": OPENAI_STREAMS, "anthropic": ANTHROPIC_STREAMS, "gemini": GEMINI_STREAMS}
        data = _sse(seed[family][1]["events"], named=True)
        translator = adapter.chat_stream(spec, "m", True)
    at = min(at, len(data))
    _drive(adapter, spec, translator, data[:at] + garbage + data[at:], cut)


def _raw_frame(headers: bytes, payload: bytes) -> bytes:
    """An event-stream frame of any header bytes, its lengths and both CRCs right."""
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


@fuzz_settings(100)
@given(st.binary(max_size=48), st.binary(max_size=48), st.booleans())
def test_bedrock_frame_with_any_headers_is_read_or_502(
    headers: bytes, payload: bytes, event: bool
) -> None:
    """A CRC-valid frame whose headers are junk (unknown value types, names that are not
    UTF-8, lengths past the end): botocore's parser fails on them, a 502 of ours."""
    if event:  # a real event's headers first, then the junk
        headers = bf.encode_frame({":message-type": "event"}, b"")[12:-4] + headers
    adapter, spec = BEDROCK
    _drive(adapter, spec, adapter.chat_stream(spec, "b", True), _raw_frame(headers, payload), 0)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (12, 12),
        (12.9, 12),
        (0, 0),
        (-5, 0),
        (-0.0, 0),
        (10**30, MAX_TOKENS),
        (1e308, MAX_TOKENS),
        (float("inf"), 0),
        (float("nan"), 0),
        (True, 0),
        ("12", 0),
        ("many", 0),
        (None, 0),
        ([3], 0),
        ({"n": 3}, 0),
    ],
)
def test_token_count_is_a_bounded_int(value: Any, count: int) -> None:
    """What an upstream reports as a count -> a non-negative int of at most MAX_TOKENS"""
    assert token_count(value) == count and type(token_count(value)) is int
    assert tokens(value, MAX_TOKENS) == MAX_TOKENS  # a sum is bounded the same way
    assert tokens(value, 1) == min(count + 1, MAX_TOKENS)
