"""Regressions found by the fuzz (tests/fuzz): each body answered 500 before, and must
now be a 400 in the endpoint's own error shape that names the field, with no upstream
call. Through the HTTP surface of a real gateway (in process, ASGI) whose models are
the built-in mock and the Anthropic, Gemini and Bedrock adapters in front of the mock
upstream server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from llmrelay.json_limits import MAX_JSON_DEPTH
from llmrelay.mock_upstream import MockUpstream
from tests.fuzz.gateway import InProcessGateway, assert_clean, translating_config
from tests.fuzz.mutations import nested

CLAUDE = "claude/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.0-flash"
BEDROCK = "bedrock/anthropic.claude-3-haiku-20240307-v1:0"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    upstream.reset()  # nothing another test scripted (a 500 to come) may answer here
    gw = InProcessGateway(
        tmp_path_factory.mktemp("bad-input"), translating_config(upstream)
    ).start()
    yield gw
    gw.stop()


def messages(model: str = "mock/echo", **fields: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": USER, **fields}


def chat(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER, **fields}


def call_with(arguments: str, model: str) -> dict[str, Any]:
    """A conversation whose earlier tool call carries ``arguments``."""
    return {
        "model": model,
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "15C"},
        ],
    }


DEEP_STRING = "[" * 300 + "]" * 300
DEEP_OBJECT = '{"a":' * 300 + "1" + "}" * 300

CASES = [
    # /v1/messages: type-wrong fields (AttributeError / TypeError / ValueError before)
    ("/v1/messages", messages(metadata=5), "metadata"),
    ("/v1/messages", messages(metadata=["user_id"]), "metadata"),
    ("/v1/messages", messages(tools=5), "tools"),
    ("/v1/messages", messages(stop_sequences=5), "stop_sequences"),
    ("/v1/messages", messages(stop_sequences="END"), "stop_sequences"),
    (
        "/v1/messages",
        messages(thinking={"type": "enabled", "budget_tokens": "x"}),
        "thinking.budget_tokens",
    ),
    ("/v1/messages", messages(output_config={"effort": ["high"]}), "output_config.effort"),
    (
        "/v1/messages",
        messages(
            messages=[
                {"role": "user", "content": [{"type": "image", "source": "https://x.test/a.png"}]}
            ]
        ),
        "messages[0].content[0]",
    ),
    (
        "/v1/messages",
        messages(messages=[{"role": "user", "content": [{"type": "document", "source": [1]}]}]),
        "messages[0].content[0]",
    ),
    (
        "/v1/messages",
        messages(messages=[{"role": "user", "content": [{"type": "text", "text": {"a": 1}}]}]),
        "messages[0].content[0]",
    ),
    # deep nesting inside a field (orjson refuses to re-encode past 254 levels)
    (
        "/v1/chat/completions",
        chat("mock/echo", messages=[{"role": "user", "content": nested(300)}]),
        None,
    ),
    ("/v1/chat/completions", chat(CLAUDE, metadata=nested(MAX_JSON_DEPTH + 1)), None),
    ("/v1/messages", messages(metadata={"x": nested(300)}), None),
    ("/v1/responses", {"model": "mock/echo", "input": [nested(300)]}, None),
    ("/v1/embeddings", {"model": "mock/text-embedding-3-small", "input": [nested(300)]}, None),
    # JSON nested deep inside a tool call's arguments string
    (
        "/v1/chat/completions",
        call_with(DEEP_OBJECT, CLAUDE),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "/v1/chat/completions",
        call_with(DEEP_OBJECT, GEMINI),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "/v1/chat/completions",
        call_with(DEEP_OBJECT, BEDROCK),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "/v1/chat/completions",
        chat(CLAUDE, tool_choice={"type": "function", "function": [1]}),
        "tool_choice",
    ),
    ("/v1/chat/completions", chat(CLAUDE, tools={"type": "function"}), "tools"),
    ("/v1/chat/completions", chat(CLAUDE, stop=5), "stop"),
    ("/v1/chat/completions", chat(CLAUDE, temperature="hot"), "temperature"),
    ("/v1/chat/completions", chat(CLAUDE, max_tokens="10"), "max_tokens"),
    # Gemini / Bedrock request translation
    ("/v1/chat/completions", chat(GEMINI, reasoning_effort=["low"]), "reasoning_effort"),
    (
        "/v1/chat/completions",
        chat(
            GEMINI,
            messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": ["wav"]}]}
            ],
        ),
        "messages[0].content[0].input_audio",
    ),
    (
        "/v1/chat/completions",
        chat(GEMINI, messages=[{"role": "user", "content": [{"type": "file", "file": "a.pdf"}]}]),
        "messages[0].content[0].file",
    ),
    (
        "/v1/chat/completions",
        chat(
            BEDROCK, messages=[{"role": "user", "content": [{"type": "file", "file": ["a.pdf"]}]}]
        ),
        "messages[0].content[0].file",
    ),
    (
        "/v1/chat/completions",
        chat(
            GEMINI,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "enum": 5}},
            },
        ),
        "response_format.json_schema.schema",
    ),
    (
        "/v1/chat/completions",
        chat(
            GEMINI,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"$defs": {"a": [1]}, "$ref": "#/$defs/a"}},
            },
        ),
        "response_format.json_schema.schema",
    ),
    (
        "/v1/embeddings",
        {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x", "dimensions": {"n": 8}},
        "dimensions",
    ),
    # /v1/responses
    ("/v1/responses", {"model": "mock/echo", "input": "hi", "text": ["json"]}, "text"),
    ("/v1/responses", {"model": "mock/echo", "input": "hi", "reasoning": "high"}, "reasoning"),
    ("/v1/responses", {"model": GEMINI, "input": "hi", "metadata": ["k"]}, "metadata"),
    ("/v1/responses", {"model": GEMINI, "input": "hi", "tools": 5}, "tools"),
    ("/v1/responses", {"model": GEMINI, "input": "hi", "instructions": {"a": 1}}, "instructions"),
]


@pytest.mark.parametrize(("path", "body", "param"), CASES)
def test_bad_input_is_a_clean_400(
    gateway: InProcessGateway, path: str, body: dict[str, Any], param: str | None
) -> None:
    reply = gateway.post(path, orjson.dumps(body) if _shallow(body) else _deep(body))
    assert_clean(path, reply)
    assert reply.status == 400, reply.body
    assert reply.upstream == [], reply
    error = orjson.loads(reply.body)["error"]
    if path != "/v1/messages":
        assert error["param"] == param, error
    if param is None:
        assert "levels deep" in error["message"], error


def test_json_too_deep_for_a_tool_result_is_sent_as_text(gateway: InProcessGateway) -> None:
    """A tool result that looks like JSON is parsed for Gemini / Bedrock; nested past the
    bound it is sent as the text it is (it used to crash the re-encoding)."""
    for model in (GEMINI, BEDROCK):
        body = call_with('{"city": "Paris"}', model)
        body["messages"][2]["content"] = DEEP_STRING
        reply = gateway.post("/v1/chat/completions", orjson.dumps(body))
        assert reply.status == 200, reply.body
        assert reply.upstream == [200]


def test_nesting_at_the_bound_is_accepted(gateway: InProcessGateway) -> None:
    """The bound leaves room for real requests: a schema nested to the limit works."""
    # body(1) -> response_format(2) -> json_schema(3) -> schema(4) -> ... -> leaf
    schema = nested(MAX_JSON_DEPTH - 4, {"type": "object"})
    body = chat(
        "mock/echo",
        response_format={"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}},
    )
    reply = gateway.post("/v1/chat/completions", orjson.dumps(body))
    assert reply.status == 200, reply.body


def _shallow(body: Any) -> bool:
    try:
        orjson.dumps(body)
    except TypeError:
        return False
    return True


def _deep(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()


REGEX_CONFIG = {
    "strategy": {
        "mode": "conditional",
        "default": "t",
        "conditions": [{"query": {"headers.x-team": {"$regex": "^(a+)+$"}}, "then": "t"}],
    },
    "targets": [{"name": "t", "provider": "mock", "model": "echo"}],
}


def test_regex_in_a_header_route_config_is_refused(gateway: InProcessGateway) -> None:
    """A client's $regex could backtrack for minutes (``^(a+)+$`` on 40 a's and a "!"),
    stalling the whole process: refused before it is compiled or run."""
    reply = gateway.post(
        "/v1/chat/completions",
        orjson.dumps(chat("mock/echo")),
        {"x-llmrelay-config": orjson.dumps(REGEX_CONFIG), "x-team": "a" * 40 + "!"},
    )
    assert_clean("/v1/chat/completions", reply)
    assert reply.status == 400 and reply.upstream == []
    error = orjson.loads(reply.body)["error"]
    assert error["param"] == "x-llmrelay-config" and "$regex" in error["message"]


def test_deeply_nested_header_route_config_is_a_400(gateway: InProcessGateway) -> None:
    """The body's nesting bound holds for a config in a header too (its queries are
    parsed and matched recursively): 480 ``$and`` levels are a 400 naming the header."""
    query = b'{"$and":[' * 480 + b'{"params.model":"mock/echo"}' + b"]}" * 480
    config = orjson.dumps(
        {
            "strategy": {
                "mode": "conditional",
                "default": "t",
                "conditions": [{"query": "Q", "then": "t"}],
            },
            "targets": [{"name": "t", "provider": "mock", "model": "echo"}],
        }
    )
    reply = gateway.post(
        "/v1/chat/completions",
        orjson.dumps(chat("mock/echo")),
        {"x-llmrelay-config": config.replace(b'"Q"', query)},
    )
    assert_clean("/v1/chat/completions", reply)
    assert reply.status == 400 and reply.upstream == []
    assert orjson.loads(reply.body)["error"]["param"] == "x-llmrelay-config"


@pytest.mark.timeout(30)
def test_many_tool_results_translate_in_linear_time() -> None:
    """80,000 tool messages (a 4 MB body) for an Anthropic target: each used to rescan
    the results turn it joined, about two minutes of event loop here. The pytest timeout
    is the hang guard (the machine is shared); linear work takes well under a second."""
    from llmrelay.providers.anthropic_request import to_anthropic
    from llmrelay.providers.base import ProviderSpec

    spec = ProviderSpec(name="c", type="anthropic", base_url="https://x.test", api_key="k")
    tools = [{"role": "tool", "tool_call_id": f"c{i}", "content": ""} for i in range(80_000)]
    out = to_anthropic(spec, {"model": "m", "messages": [*USER, *tools]}, "m", False)
    assert [len(m["content"]) for m in out["messages"][1:]] == [80_000]


@pytest.mark.parametrize("on_errors", [[["429"]], ["²"], [{"a": 1}]])
def test_bad_on_errors_in_a_header_route_config_is_a_400(
    gateway: InProcessGateway, on_errors: list[Any]
) -> None:
    """A list or a non-ASCII digit among ``on_errors`` was a TypeError / ValueError (500)."""
    config = {
        "strategy": {"mode": "fallback"},
        "on_errors": on_errors,
        "targets": [{"provider": "mock", "model": "echo"}],
    }
    reply = gateway.post(
        "/v1/chat/completions",
        orjson.dumps(chat("mock/echo")),
        {"x-llmrelay-config": orjson.dumps(config)},
    )
    assert_clean("/v1/chat/completions", reply)
    assert reply.status == 400 and reply.upstream == []
    assert orjson.loads(reply.body)["error"]["param"] == "on_errors[0]"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_control_characters_in_anthropic_beta_are_a_400(
    gateway: InProcessGateway, path: str
) -> None:
    """The header goes to Anthropic as is: a control character in it made the HTTP client
    refuse the upstream call (``ValueError``), a 500."""
    body = {"model": CLAUDE, "messages": USER}
    if path == "/v1/messages":
        body["max_tokens"] = 16
    reply = gateway.post(path, orjson.dumps(body), {"anthropic-beta": b"tools-2024\x01"})
    assert_clean(path, reply)
    assert reply.status == 400 and reply.upstream == [], reply
