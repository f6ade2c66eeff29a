"""What llmrelay sends, checked against OpenAI's published OpenAPI description.

Every body and stream event is validated with ``jsonschema`` (2020-12) against the
components vendored in ``tests/spec/openai/schemas.json`` by
``scripts/vendor_openai_schemas.py`` (from ``../shared/specs/openai/openapi.yaml``,
MIT), both passed through (an OpenAI-format upstream, a ``type: openai`` provider for
Responses) and translated (Anthropic, Gemini, Bedrock, and Responses served by
Anthropic): chat completions and their chunks (text, tool calls, usage), embeddings,
the model list and one model, Responses objects and their stream events (also one
that fails midway), and error bodies (ours, the provider's passed on or translated, and
the in-band error event that ends a broken stream).

Quirks of the spec met on the way, and what the test does about them:

* Its two recursive filters use draft 2019-09's ``$recursiveAnchor`` /
  ``$recursiveRef`` inside an OpenAPI 3.1 (2020-12) document; the vendoring script
  turns them into plain ``$ref``.
* The document still uses OpenAPI 3.0's ``nullable: true`` (over a hundred times, e.g.
  a chunk's ``finish_reason``, ``logprobs`` and ``usage``), which JSON Schema ignores;
  the vendoring script rewrites it as ``anyOf: [..., {"type": "null"}]``.
* ``Embedding.embedding`` is an array of numbers only, but with
  ``encoding_format: base64`` OpenAI (and llmrelay) send a base64 string; those
  answers are validated with the vectors decoded back to floats.
* ``Response.user`` (a deprecated string) and ``Response.usage`` are not nullable, yet
  the spec's own examples answer ``"user": null`` and, in ``response.created``,
  ``"usage": null``, as the mock does for a pass-through; llmrelay's translated
  Responses objects omit them, and a pass-through's ``null`` is tolerated. Likewise its
  examples show ``"system_fingerprint": null``, which the schema does not allow and
  translated chunks therefore omit.
* ``ResponseUsage.input_tokens_details`` requires ``cache_write_tokens`` (newer than
  many clients); both the translation and the mock send it.
* A ``Response`` lists the request's function tools with ``strict`` and ``parameters``
  always present (nullable): the translation echoes them so, the mock as OpenAI does.
* ``discriminator`` is an OpenAPI annotation, not JSON Schema: ``oneOf`` is checked on
  its own, so an event must match exactly one of the stream event schemas.
* Stream chunks: the spec types ``system_fingerprint`` (and ``service_tier``) as
  strings, not nullable, so a translated chunk must omit them rather than send
  ``null`` (issue 8, item 20). ``usage: null`` on ordinary chunks is allowed.
* ``ErrorResponse.error`` requires ``code``, ``message``, ``param`` and ``type``; ``code``
  and ``param`` may be ``null`` but must be present.
* ``Response`` requires many fields a minimal answer has no value for (``tools``,
  ``parallel_tool_calls``, ``tool_choice``, ``metadata``, ``instructions`` ...): they
  must be present, most of them nullable.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.native_providers import native_providers

SCHEMAS = Path(__file__).resolve().parent.parent / "spec" / "openai" / "schemas.json"
_BASE = "urn:llmrelay:openai-spec"

#: Chat models: the upstream's own OpenAI answers (passed through) and three translations.
CHAT = {
    "pass-through": "up/gpt-4o",
    "anthropic": "claude/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.0-flash",
    "bedrock": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
}
EMBEDDINGS = {
    "pass-through": "up/text-embedding-3-small",
    "gemini": "gemini/text-embedding-004",
    "bedrock-cohere": "bedrock/cohere.embed-english-v3",
}
RESPONSES = {"pass-through": "oai/gpt-4o", "anthropic": "claude/claude-sonnet-4-5"}


@cache
def _registry() -> tuple[dict[str, Any], Registry[Any]]:
    document = json.loads(SCHEMAS.read_text())
    resource = Resource.from_contents(document)
    return document, Registry().with_resource(_BASE, resource)


def validator(component: str) -> Draft202012Validator:
    document, registry = _registry()
    assert component in document["$defs"], component
    return Draft202012Validator({"$ref": f"{_BASE}#/$defs/{component}"}, registry=registry)


def check(component: str, instance: Any) -> None:
    """Fail with every violation listed (the first alone is often a oneOf summary)."""
    errors = sorted(validator(component).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        lines = []
        for e in errors[:5]:
            lines.append(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}")
            lines.extend(
                f"    - {'/'.join(map(str, c.absolute_path))}: {c.message[:200]}"
                for c in sorted(e.context, key=lambda c: len(c.absolute_path))[-3:]
            )
        pytest.fail(f"{component} violated:\n" + "\n".join(lines) + f"\n{instance!r:.1500}")


@pytest.fixture(scope="module")
def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("openai-spec")
    proc = GatewayProcess(
        directory,
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
                {
                    "name": "oai",
                    "type": "openai",
                    "base_url": upstream.base_url,
                    "api_key": "sk-upstream-abcdefgh",
                },
                {
                    "name": "claude",
                    "type": "anthropic",
                    "base_url": upstream.base_url,
                    "api_key": "sk-ant-upstream-1234",
                },
                *[
                    p
                    for p in native_providers(upstream, directory)
                    if p["name"] in ("gemini", "bedrock")
                ],
            ],
        },
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[httpx.Client]:
    key = gw.create_key("openai-spec")
    with httpx.Client(
        base_url=gw.base_url, timeout=60, headers={"authorization": f"Bearer {key}"}
    ) as c:
        # Tests turn background list refreshes off; fetch the provider lists once.
        c.get("/models?refresh=true").raise_for_status()
        yield c


def events(resp: httpx.Response) -> list[Any]:
    """The JSON payloads of an SSE answer (``[DONE]`` left out)."""
    out = []
    for line in resp.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


HELLO = [{"role": "user", "content": "Say hello to the spec"}]
#: The mock answers with a call of the first tool when the prompt says "tool".
TOOL_ASK = [{"role": "user", "content": "use the weather tool for Paris"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("model", CHAT.values(), ids=CHAT.keys())
def test_chat_completion(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    resp = client.post(
        "/chat/completions", json={"model": model, "messages": HELLO, "max_tokens": 50}
    )
    assert resp.status_code == 200, resp.text
    check("CreateChatCompletionResponse", resp.json())
    tool = client.post(
        "/chat/completions",
        json={
            "model": model,
            "messages": TOOL_ASK,
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": 50,
        },
    )
    assert tool.status_code == 200, tool.text
    check("CreateChatCompletionResponse", tool.json())
    assert tool.json()["choices"][0]["message"]["tool_calls"]


@pytest.mark.parametrize("model", CHAT.values(), ids=CHAT.keys())
@pytest.mark.parametrize("kind", ["usage", "no-usage", "tools"])
def test_chat_stream_chunks(
    client: httpx.Client, mock: MockUpstream, model: str, kind: str
) -> None:
    body: dict[str, Any] = {"model": model, "messages": HELLO, "stream": True, "max_tokens": 50}
    if kind != "no-usage":
        body["stream_options"] = {"include_usage": True}
    if kind == "tools":
        body.update(messages=TOOL_ASK, tools=[WEATHER], tool_choice="required")
    with client.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        chunks = events(resp)
    assert len(chunks) >= 2
    for chunk in chunks:
        check("CreateChatCompletionStreamResponse", chunk)
    assert any(c.get("usage") for c in chunks) is (kind != "no-usage")
    if kind == "tools":
        assert any(choice["delta"].get("tool_calls") for c in chunks for choice in c["choices"]), (
            chunks
        )


@pytest.mark.parametrize("model", EMBEDDINGS.values(), ids=EMBEDDINGS.keys())
def test_embeddings(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    for encoding in ("float", "base64"):
        resp = client.post(
            "/embeddings", json={"model": model, "input": ["a", "b"], "encoding_format": encoding}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if encoding == "base64":  # the spec knows only float arrays (see above)
            for item in body["data"]:
                raw = base64.b64decode(item["embedding"])
                item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        check("CreateEmbeddingResponse", body)


def test_model_list_and_model(client: httpx.Client) -> None:
    listed = client.get("/models")
    assert listed.status_code == 200
    check("ListModelsResponse", listed.json())
    ids = [m["id"] for m in listed.json()["data"]]
    assert "up/gpt-4o" in ids
    one = client.get("/models/up/gpt-4o")
    assert one.status_code == 200, one.text
    check("Model", one.json())


RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": WEATHER["function"]["parameters"],
}  # type: ignore[index]


@pytest.mark.parametrize("model", RESPONSES.values(), ids=RESPONSES.keys())
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
def test_responses_object_and_stream_events(
    client: httpx.Client, mock: MockUpstream, model: str, tools: bool
) -> None:
    body: dict[str, Any] = {"model": model, "input": "Say hello", "max_output_tokens": 50}
    if tools:
        body.update(
            input="use the weather tool for Paris", tools=[RESPONSES_TOOL], tool_choice="required"
        )
    resp = client.post("/responses", json=body)
    assert resp.status_code == 200, resp.text
    check("Response", _tolerated(model, resp.json()))
    if tools:
        assert [i["type"] for i in resp.json()["output"]] == ["function_call"]
    with client.stream("POST", "/responses", json={**body, "stream": True}) as streamed:
        assert streamed.status_code == 200
        stream_events = events(streamed)
    kinds = {e["type"] for e in stream_events}
    assert {"response.created", "response.completed"} <= kinds
    if tools:
        assert "response.function_call_arguments.done" in kinds, kinds
    for event in stream_events:
        if isinstance(event.get("response"), dict):
            _tolerated(model, event["response"])
        check("ResponseStreamEvent", event)


def _tolerated(model: str, response: dict[str, Any]) -> dict[str, Any]:
    """A pass-through's ``null`` ``user`` / ``usage``, as the spec's examples answer."""
    if model == RESPONSES["pass-through"]:
        for name in ("user", "usage"):
            if name in response and response[name] is None:
                del response[name]
    return response


def test_error_bodies(client: httpx.Client, gw: GatewayProcess, mock: MockUpstream) -> None:
    ours = [
        httpx.post(gw.base_url + "/chat/completions", json={"model": "up/gpt-4o"}),  # 401
        client.post("/chat/completions", json={"model": "up/gpt-4o"}),  # 400
        client.post("/chat/completions", content=b"{not json"),  # 400
        client.post("/chat/completions", json={"model": "nowhere/x", "messages": HELLO}),
        client.get("/models/up/not-a-model"),  # 404
        client.get("/no/such/route"),  # 404
        client.get("/chat/completions"),  # 405
    ]
    for resp in ours:
        assert resp.status_code >= 400
        check("ErrorResponse", resp.json())
    for model in CHAT.values():  # the provider's own error, passed on or translated
        mock.script(Behaviour(status=429), Behaviour(status=429), Behaviour(status=429))
        resp = client.post("/chat/completions", json={"model": model, "messages": HELLO})
        assert resp.status_code == 429, (model, resp.text)
        check("ErrorResponse", resp.json())


@pytest.mark.parametrize("model", RESPONSES.values(), ids=RESPONSES.keys())
def test_responses_stream_failing_midway(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    """A provider's in-stream error still ends the stream with events of the spec."""
    mock.script(Behaviour(error_after_chunks=3))
    with client.stream(
        "POST",
        "/responses",
        json={"model": model, "input": "Say hello to everyone here", "stream": True},
    ) as resp:
        assert resp.status_code == 200
        stream_events = events(resp)
    assert stream_events[-1]["type"] in ("error", "response.failed"), stream_events[-1]
    for event in stream_events:
        if isinstance(event.get("response"), dict):
            _tolerated(model, event["response"])
        check("ResponseStreamEvent", event)


@pytest.mark.parametrize("model", CHAT.values(), ids=CHAT.keys())
def test_chat_stream_cut_midway_ends_with_an_error_body(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    """The in-band error event that ends a broken stream is an ``ErrorResponse``."""
    mock.script(Behaviour(drop_after_chunks=2))
    with client.stream(
        "POST",
        "/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "one two three four"}],
            "stream": True,
        },
    ) as resp:
        assert resp.status_code == 200
        payloads = events(resp)
    *chunks, last = payloads
    assert "error" in last, last
    check("ErrorResponse", last)
    for chunk in chunks:
        check("CreateChatCompletionStreamResponse", chunk)
