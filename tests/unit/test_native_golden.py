"""Golden tests of the Gemini / Vertex, Bedrock and Azure translations.

``tests/golden/<provider>/`` holds requests, responses, streams and errors in the wire
shapes each provider documents, next to the exact OpenAI shape llmrelay must produce
(``"<any>"`` stands for generated ids and timestamps). Streams are fed in 7-byte pieces
so frame splitting is exercised too. Round trips check that a provider's answer, once
translated to OpenAI and sent back as conversation history, reaches the provider again
with every field it needs (tool ids, arguments, Gemini's thought signatures).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmrelay.errors import UpstreamError
from llmrelay.mock_answers.bedrock_format import encode_frame
from llmrelay.providers.azure import AzureOpenAIAdapter
from llmrelay.providers.base import Adapter, ProviderSpec
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.gemini import GeminiAdapter, VertexAdapter
from llmrelay.sse import EventSplitter, event_data

GOLDEN = Path(__file__).parent.parent / "golden"
SPECS: dict[str, tuple[Adapter, ProviderSpec]] = {
    "gemini": (
        GeminiAdapter(),
        ProviderSpec(
            name="gemini",
            type="gemini",
            base_url="https://generativelanguage.googleapis.com/v1beta",
            api_key="gm-key",
        ),
    ),
    "vertex": (
        VertexAdapter(),
        ProviderSpec(
            name="vertex",
            type="vertex",
            base_url="https://us-central1-aiplatform.googleapis.com/v1",
            api_key=None,
            project="my-proj",
            location="us-central1",
        ),
    ),
    "bedrock": (
        BedrockAdapter(),
        ProviderSpec(
            name="bedrock",
            type="bedrock",
            base_url="https://bedrock-runtime.us-east-1.amazonaws.com",
            api_key=None,
            region="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            aws_session_token="FwoGZXIvYXdzEXAMPLE",
        ),
    ),
    "azure": (
        AzureOpenAIAdapter(),
        ProviderSpec(
            name="azure",
            type="azure",
            base_url="https://my-resource.openai.azure.com/openai/",
            api_key="az-key",
            api_version="2024-10-21",
        ),
    ),
}


def load(kind: str) -> list[Any]:
    return [
        pytest.param(
            p.parent.parent.name, json.loads(p.read_text()), id=f"{p.parent.parent.name}-{p.stem}"
        )
        for p in sorted(GOLDEN.glob(f"*/{kind}/*.json"))
        if p.parent.parent.name in SPECS
    ]


def matches(actual: Any, expected: Any) -> bool:
    """Equality where ``"<any>"`` matches any value and ``"<any>X"`` any string ending X."""
    if isinstance(expected, str) and expected.startswith("<any>"):
        return isinstance(actual, str | int) and str(actual).endswith(expected[5:])
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(matches(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected and type(actual) is type(expected))


@pytest.mark.parametrize(("provider", "case"), load("requests"))
def test_request(provider: str, case: dict[str, Any]) -> None:
    adapter, spec = SPECS[provider]
    if case.get("embeddings"):
        call = adapter.embeddings_request(spec, case["openai"], case["model"])
    else:
        call = adapter.chat_request(spec, case["openai"], case["model"], case["stream"])
    actual = {
        "method": call.method,
        "url": call.url,
        "headers": call.headers,
        "body": orjson.loads(call.body),
    }
    assert matches(actual, case["expected"]), json.dumps(actual, indent=1)


@pytest.mark.parametrize(("provider", "case"), load("responses"))
def test_response(provider: str, case: dict[str, Any]) -> None:
    adapter, spec = SPECS[provider]
    result = adapter.chat_response(spec, orjson.dumps(case["upstream"]), case["model"])
    actual = orjson.loads(result.body)
    assert matches(actual, case["openai"]), json.dumps(actual, indent=1)
    assert result.finish_reason == actual["choices"][0]["finish_reason"]
    usage = actual["usage"]
    assert result.usage is not None and result.usage.total_tokens == usage["total_tokens"]
    assert result.usage.cached_tokens == usage["prompt_tokens_details"]["cached_tokens"]


def _raw_stream(provider: str, case: dict[str, Any]) -> bytes:
    if provider == "bedrock":
        return b"".join(
            encode_frame(
                {
                    ":event-type" if kind == "event" else ":exception-type": name,
                    ":content-type": "application/json",
                    ":message-type": kind,
                },
                orjson.dumps(body),
            )
            for kind, name, body in case["upstream_frames"]
        )
    return b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in case["upstream_events"])


@pytest.mark.parametrize(("provider", "case"), load("streams"))
def test_stream(provider: str, case: dict[str, Any]) -> None:
    adapter, spec = SPECS[provider]
    translator = adapter.chat_stream(spec, case["model"], case["wants_usage"])
    splitter = adapter.splitter(spec, 1 << 24)
    raw = _raw_stream(provider, case)
    out: list[bytes] = []
    error = None
    try:
        for i in range(0, len(raw), 7):
            for event in splitter.feed(raw[i : i + 7]):
                out.extend(translator.feed(event))
        out.extend(translator.end())
    except UpstreamError as exc:
        error = {"status": exc.status, "body": exc.to_dict()}
    events = []
    for event in EventSplitter().feed(b"".join(out)):
        data = event_data(event)
        events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data or b"null"))
    assert matches(events, case["openai_events"]), json.dumps(events, indent=1)
    assert error == case["error"]
    assert translator.done is case["done"]
    assert translator.finish_reason == case["finish_reason"]
    ids = {e["id"] for e in events if isinstance(e, dict)}
    assert len(ids) <= 1  # one completion id across the stream


@pytest.mark.parametrize(("provider", "case"), load("errors"))
def test_error(provider: str, case: dict[str, Any]) -> None:
    adapter, spec = SPECS[provider]
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    err = adapter.error(spec, case["status"], raw, case["headers"])
    assert err.status == case["expected_status"]
    assert err.to_dict() == case["expected"]
    assert err.headers == case["expected_headers"]


# -- round trips: provider answer -> OpenAI -> provider history ---------------------------


def _round_trip(provider: str, upstream: dict[str, Any]) -> dict[str, Any]:
    """Translate an answer to OpenAI, then send it back as the assistant turn."""
    adapter, spec = SPECS[provider]
    answer = orjson.loads(adapter.chat_response(spec, orjson.dumps(upstream), "m").body)
    message = answer["choices"][0]["message"]
    follow = {"messages": [{"role": "user", "content": "go"}, message]}
    follow["messages"] += [
        {"role": "tool", "tool_call_id": c["id"], "content": "{}"}
        for c in message.get("tool_calls") or ()
    ]
    return orjson.loads(adapter.chat_request(spec, follow, "m", False).body)


@pytest.mark.parametrize(
    "name", ["parallel_function_calls_with_signature", "text_with_thoughts_and_cache"]
)
def test_gemini_round_trip_keeps_parts(name: str) -> None:
    upstream = json.loads((GOLDEN / "gemini" / "responses" / f"{name}.json").read_text())
    sent = _round_trip("gemini", upstream["upstream"])
    original = [
        p for p in upstream["upstream"]["candidates"][0]["content"]["parts"] if not p.get("thought")
    ]
    model_turn = sent["contents"][1]
    assert model_turn["role"] == "model"
    if any("functionCall" in p for p in original):
        assert model_turn["parts"] == original  # names, args and thought signatures
    else:
        assert model_turn["parts"] == [{"text": "".join(p["text"] for p in original)}]


def test_bedrock_round_trip_keeps_blocks() -> None:
    upstream = json.loads(
        (GOLDEN / "bedrock" / "responses" / "text_and_tool_use.json").read_text()
    )["upstream"]
    sent = _round_trip("bedrock", upstream)
    assert sent["messages"][1] == upstream["output"]["message"]
    results = sent["messages"][2]["content"]
    assert [r["toolResult"]["toolUseId"] for r in results] == ["tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"]
