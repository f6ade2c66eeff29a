"""The mocks honour ``tool_choice`` and structured outputs in every format that has them.

Through the mock upstream's routes (OpenAI chat with the official SDK, Responses, Anthropic
Messages) and the built-in ``mock`` provider's transport; tool arguments and JSON answers
are checked against the schema the request sent.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import openai
import orjson
import pytest

from llmrelay.mock_answers import bedrock_format as bf
from llmrelay.mock_answers import gemini_format as gf
from llmrelay.mock_upstream import MockUpstream
from llmrelay.providers.base import UpstreamCall
from llmrelay.providers.mock import MockTransport

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "emails": {"type": "array", "items": {"type": "string", "format": "email"}},
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age", "emails", "role"],
}


def chat_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
        {"type": "function", "function": {"name": "save_person", "parameters": PERSON}},
    ]


@pytest.fixture
def client(mock: MockUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url, api_key="k", max_retries=0)


def one_call(completion: Any) -> tuple[str, dict[str, Any]]:
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    return calls[0].function.name, orjson.loads(calls[0].function.arguments)


# -- OpenAI chat completions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "text", "expected"),
    [
        ({"type": "function", "function": {"name": "save_person"}}, "Ada", "save_person"),
        ("required", "Ada", "get_weather"),
        ("required", "please save_person for Ada", "save_person"),
        ("auto", "use a tool: save_person", "save_person"),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "save_person"}}],
                },
            },
            "Ada",
            "save_person",
        ),
    ],
)
def test_chat_tool_choice_calls_the_tool(
    client: openai.OpenAI, choice: Any, text: str, expected: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": text}],
        tools=chat_tools(),
        tool_choice=choice,
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    name, arguments = one_call(completion)
    assert name == expected
    jsonschema.validate(arguments, WEATHER if name == "get_weather" else PERSON)


def test_chat_tool_choice_none_and_auto_answer_text(client: openai.OpenAI) -> None:
    for choice, text in (("none", "use the tool"), ("auto", "no call here")):
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": text}],
            tools=chat_tools(),
            tool_choice=choice,
        )  # type: ignore[arg-type]
        assert completion.choices[0].message.content == text
        assert completion.choices[0].message.tool_calls is None


def test_chat_forced_call_after_results_moves_to_a_tool_not_called_yet(
    client: openai.OpenAI,
) -> None:
    """An agent forced to call tools (pydantic-ai's output tool) reaches its last tool."""
    history: list[Any] = [
        {"role": "user", "content": "Ada"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Ada","days":1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    forced = client.chat.completions.create(
        model="gpt-4o", messages=history, tools=chat_tools(), tool_choice="required"
    )
    assert one_call(forced)[0] == "save_person"
    free = client.chat.completions.create(model="gpt-4o", messages=history, tools=chat_tools())
    assert free.choices[0].message.content == "sunny"


def test_chat_tool_call_streams_argument_fragments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Ada"}],
        tools=chat_tools(),
        tool_choice={"type": "function", "function": {"name": "save_person"}},
        stream=True,
    )
    fragments = [
        tc.function.arguments
        for chunk in stream
        if chunk.choices
        for tc in chunk.choices[0].delta.tool_calls or []
        if tc.function and tc.function.arguments
    ]
    assert len(fragments) > 2
    jsonschema.validate(orjson.loads("".join(fragments)), PERSON)


def test_chat_json_schema_response_format(client: openai.OpenAI) -> None:
    fmt: Any = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": False},
    }
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Ada"}], response_format=fmt
    )
    content = completion.choices[0].message.content
    assert content is not None
    person = orjson.loads(content)
    jsonschema.validate(person, PERSON)
    assert person["name"] == "Ada"
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Ada"}],
        response_format=fmt,
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 2 and "".join(pieces) == content


def test_chat_json_object_response_format(client: openai.OpenAI) -> None:
    def answer(text: str) -> Any:
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": text}],
            response_format={"type": "json_object"},
        )
        return orjson.loads(completion.choices[0].message.content or "")

    assert answer("hello") == {"text": "hello"}
    assert answer('{"a": [1, 2]}') == {"a": [1, 2]}


# -- OpenAI Responses -------------------------------------------------------------------------


def responses(mock: MockUpstream, body: dict[str, Any]) -> Any:
    reply = httpx.post(mock.base_url + "/responses", json={"model": "gpt-4o", **body}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply


def test_responses_named_tool_choice_and_schema_arguments(mock: MockUpstream) -> None:
    tools = [
        {"type": "function", "name": "get_weather", "parameters": WEATHER},
        {"type": "function", "name": "save_person", "parameters": PERSON},
    ]
    body = responses(
        mock,
        {
            "input": "Ada",
            "tools": tools,
            "tool_choice": {"type": "function", "name": "save_person"},
        },
    ).json()
    call = body["output"][0]
    assert call["type"] == "function_call" and call["name"] == "save_person"
    jsonschema.validate(orjson.loads(call["arguments"]), PERSON)
    text = responses(mock, {"input": "use the tool", "tools": tools, "tool_choice": "none"})
    assert text.json()["output"][0]["type"] == "message"


def test_responses_text_format_json_schema(mock: MockUpstream) -> None:
    fmt = {"type": "json_schema", "name": "person", "schema": PERSON, "strict": False}
    body = responses(mock, {"input": "Ada", "text": {"format": fmt}}).json()
    jsonschema.validate(orjson.loads(body["output"][0]["content"][0]["text"]), PERSON)
    assert body["text"]["format"]["name"] == "person"
    events = [
        orjson.loads(e.split(b"\ndata: ")[1])
        for e in responses(
            mock, {"input": "Ada", "text": {"format": fmt}, "stream": True}
        ).content.split(b"\n\n")
        if e
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 2
    jsonschema.validate(orjson.loads("".join(deltas)), PERSON)


# -- Anthropic Messages -----------------------------------------------------------------------


def messages(mock: MockUpstream, body: dict[str, Any]) -> httpx.Response:
    full = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Ada"}],
        **body,
    }
    reply = httpx.post(
        mock.root_url + "/v1/messages",
        json=full,
        timeout=10,
        headers={"anthropic-version": "2023-06-01"},
    )
    assert reply.status_code == 200, reply.text
    return reply


ANTHROPIC_TOOLS = [
    {"name": "get_weather", "input_schema": WEATHER},
    {"name": "save_person", "input_schema": PERSON},
]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "tool", "name": "save_person"}, "save_person"),
        ({"type": "any"}, "get_weather"),
        ({"type": "none"}, None),
        ({"type": "auto"}, None),
    ],
)
def test_anthropic_tool_choice(mock: MockUpstream, choice: Any, expected: str | None) -> None:
    body = messages(mock, {"tools": ANTHROPIC_TOOLS, "tool_choice": choice}).json()
    uses = [b for b in body["content"] if b["type"] == "tool_use"]
    if expected is None:
        assert uses == [] and body["stop_reason"] == "end_turn"
        return
    assert [u["name"] for u in uses] == [expected] and body["stop_reason"] == "tool_use"
    jsonschema.validate(uses[0]["input"], WEATHER if expected == "get_weather" else PERSON)


def test_anthropic_output_config_json_schema(mock: MockUpstream) -> None:
    config = {"format": {"type": "json_schema", "schema": PERSON}}
    body = messages(mock, {"output_config": config}).json()
    assert body["content"][0]["type"] == "text"
    answer = body["content"][0]["text"]
    jsonschema.validate(orjson.loads(answer), PERSON)
    events = [
        orjson.loads(e.split(b"\ndata: ")[1])
        for e in messages(mock, {"output_config": config, "stream": True}).content.split(b"\n\n")
        if e
    ]
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) > 2 and "".join(deltas) == answer


# -- Gemini and Bedrock ----------------------------------------------------------------------


def test_gemini_function_arguments_and_response_schema() -> None:
    declaration = {
        "name": "save_person",
        "parameters": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "minimum": 3}},
            "required": ["name", "age"],
        },
    }
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "Ada"}]}],
        "tools": [{"functionDeclarations": [declaration]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    assert gf.plan_reply(body).call == ("save_person", {"name": "Ada", "age": 3})
    del body["tools"], body["toolConfig"]
    body["generationConfig"] = {
        "responseMimeType": "application/json",
        "responseJsonSchema": PERSON,
    }
    jsonschema.validate(orjson.loads(gf.plan_reply(body).text or ""), PERSON)


def test_bedrock_named_tool_arguments() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "Ada"}]}],
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": n, "inputSchema": {"json": s}}}
                for n, s in (("get_weather", WEATHER), ("save_person", PERSON))
            ],
            "toolChoice": {"tool": {"name": "save_person"}},
        },
    }
    tool = bf.plan_reply(body).tool
    assert tool is not None and tool[1] == "save_person"
    jsonschema.validate(tool[2], PERSON)


# -- the built-in mock provider ---------------------------------------------------------------


async def test_builtin_mock_provider_answers_tools_and_schemas() -> None:
    transport = MockTransport()

    async def chat(**extra: Any) -> Any:
        body = {"model": "echo", "messages": [{"role": "user", "content": "Ada"}], **extra}
        call = UpstreamCall(
            "POST", "http://mock.invalid/v1/chat/completions", {}, orjson.dumps(body)
        )
        answer = await transport.send(
            call, provider="mock", timeout=5, connect_timeout=5, stream=False
        )
        return orjson.loads(await answer.read())["choices"][0]["message"]

    message = await chat(tools=chat_tools(), tool_choice="required")
    jsonschema.validate(orjson.loads(message["tool_calls"][0]["function"]["arguments"]), WEATHER)
    message = await chat(
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    )
    jsonschema.validate(orjson.loads(message["content"]), PERSON)
