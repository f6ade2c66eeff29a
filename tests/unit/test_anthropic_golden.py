"""Golden tests of the Anthropic translation, both directions, against real-format fixtures.

``tests/golden/anthropic/`` holds Anthropic requests, responses, SSE streams and errors
in the exact shapes the Messages API documents, each next to the OpenAI shape llmrelay
must produce (or accept). Round trips check that nothing is lost between the two:
OpenAI → Anthropic → OpenAI, and Anthropic → OpenAI → Anthropic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from llmrelay.api.messages_stream import AnthropicEncoder
from llmrelay.api.messages_translate import to_chat, to_message
from llmrelay.errors import UpstreamError
from llmrelay.providers.anthropic import AnthropicAdapter, to_openai_completion
from llmrelay.providers.anthropic_request import to_anthropic
from llmrelay.providers.anthropic_stream import AnthropicStreamTranslator
from llmrelay.providers.base import ProviderSpec
from llmrelay.sse import EventSplitter, event_data

GOLDEN = Path(__file__).parent.parent / "golden" / "anthropic"
CREATED = 1700000000
MODEL = "claude-sonnet-4-5"
SPEC = ProviderSpec(
    name="claude", type="anthropic", base_url="https://api.anthropic.com/v1", api_key="sk-ant-test"
)


def _load(kind: str) -> list[Any]:
    return [
        pytest.param(json.loads(p.read_text()), id=p.stem)
        for p in sorted((GOLDEN / kind).glob("*.json"))
    ]


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _load("requests"))
def test_request_openai_to_anthropic(case: dict[str, Any]) -> None:
    openai = case["openai"]
    assert to_anthropic(SPEC, openai, MODEL, bool(openai.get("stream"))) == case["anthropic"]


@pytest.mark.parametrize("case", _load("requests"))
def test_request_roundtrip_from_anthropic(case: dict[str, Any]) -> None:
    """Anthropic → OpenAI (the /v1/messages translation) → Anthropic gives it back."""
    if case.get("anthropic_roundtrip") is False:
        pytest.skip("uses a one-way construct (JSON-mode tool, reasoning effort, cache markers)")
    anthropic = case["anthropic"]
    chat = to_chat(anthropic)
    assert to_anthropic(SPEC, chat, MODEL, bool(chat.get("stream"))) == anthropic


@pytest.mark.parametrize("case", [c for c in _load("requests") if c.values[0]["canonical"]])
def test_request_roundtrip_from_openai(case: dict[str, Any]) -> None:
    """OpenAI → Anthropic → OpenAI keeps every field of a canonical chat request."""
    openai = case["openai"]
    assert to_chat(to_anthropic(SPEC, openai, MODEL, bool(openai.get("stream")))) == openai


# -- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", _load("responses"))
def test_response_anthropic_to_openai(case: dict[str, Any]) -> None:
    assert to_openai_completion(case["anthropic"], created=CREATED) == case["openai"]


@pytest.mark.parametrize("case", _load("responses"))
def test_response_adapter_bills_usage(case: dict[str, Any]) -> None:
    result = AnthropicAdapter().chat_response(SPEC, json.dumps(case["anthropic"]).encode(), MODEL)
    usage = case["openai"]["usage"]
    assert result.usage is not None
    assert result.usage.prompt_tokens == usage["prompt_tokens"]
    assert result.usage.completion_tokens == usage["completion_tokens"]
    assert result.usage.cached_tokens == usage["prompt_tokens_details"]["cached_tokens"]
    assert result.usage.cache_write_tokens == usage["prompt_tokens_details"]["cache_write_tokens"]
    assert result.finish_reason == case["openai"]["choices"][0]["finish_reason"]


@pytest.mark.parametrize("case", _load("responses"))
def test_response_roundtrip_from_openai(case: dict[str, Any]) -> None:
    """OpenAI → Anthropic (/v1/messages) → OpenAI (the adapter) keeps every field."""
    if case["anthropic"]["stop_reason"] in ("stop_sequence",) or any(
        b.get("name") == "llmrelay_json_output" for b in case["anthropic"]["content"]
    ):
        pytest.skip("stop_sequence and JSON mode fold into plain stop/content on the way in")
    openai = case["openai"]
    assert to_openai_completion(to_message(openai), created=CREATED) == openai


@pytest.mark.parametrize("case", _load("responses"))
def test_response_roundtrip_from_anthropic(case: dict[str, Any]) -> None:
    """Anthropic → OpenAI → Anthropic keeps content, stop reason and token counts."""
    original = case["anthropic"]
    back = to_message(to_openai_completion(original, created=CREATED))
    assert back["id"] == original["id"] and back["model"] == original["model"]
    expected_stop = {"stop_sequence": "end_turn"}.get(
        original["stop_reason"], original["stop_reason"]
    )
    if any(b.get("name") == "llmrelay_json_output" for b in original["content"]):
        assert back["content"] == [{"type": "text", "text": '{"name":"Jane","age":54}'}]
        assert back["stop_reason"] == "end_turn"
    else:
        assert back["stop_reason"] == expected_stop
        assert _strip_signatures(back["content"]) == _strip_signatures(original["content"])
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ):
        assert back["usage"][key] == original["usage"].get(key, 0)


def _strip_signatures(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in b.items() if k != "signature"} for b in blocks]


# -- streams -----------------------------------------------------------------------------

STREAMS = sorted(
    p.name.removesuffix(".anthropic.sse") for p in (GOLDEN / "streams").glob("*.anthropic.sse")
)


def _translate(name: str, wants_usage: bool = True) -> tuple[bytes, AnthropicStreamTranslator]:
    source = (GOLDEN / "streams" / f"{name}.anthropic.sse").read_bytes()
    translator = AnthropicStreamTranslator("claude", MODEL, wants_usage, created=CREATED)
    out: list[bytes] = []
    for event in EventSplitter().feed(source):
        out.extend(translator.feed(event))
    out.extend(translator.end())
    return b"".join(out), translator


@pytest.mark.parametrize("name", [n for n in STREAMS if n != "overloaded"])
def test_stream_anthropic_to_openai(name: str) -> None:
    out, translator = _translate(name)
    assert out == (GOLDEN / "streams" / f"{name}.openai.sse").read_bytes()
    assert translator.done
    assert translator.usage is not None and translator.usage.completion_tokens > 0


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_stream_translation_does_not_depend_on_read_sizes(chunk_size: int) -> None:
    source = (GOLDEN / "streams" / "tool_use.anthropic.sse").read_bytes()
    translator = AnthropicStreamTranslator("claude", MODEL, True, created=CREATED)
    splitter = EventSplitter()
    out: list[bytes] = []
    for i in range(0, len(source), chunk_size):
        for event in splitter.feed(source[i : i + chunk_size]):
            out.extend(translator.feed(event))
    assert b"".join(out) == (GOLDEN / "streams" / "tool_use.openai.sse").read_bytes()


def test_stream_without_usage_request_has_no_usage_chunk() -> None:
    out, translator = _translate("text", wants_usage=False)
    assert b'"usage"' not in out and out.endswith(b"data: [DONE]\n\n")
    assert translator.usage is not None and translator.usage.prompt_tokens == 125  # still billed


def test_stream_error_event_raises_with_its_status() -> None:
    source = (GOLDEN / "streams" / "overloaded.anthropic.sse").read_bytes()
    translator = AnthropicStreamTranslator("claude", MODEL, True, created=CREATED)
    out: list[bytes] = []
    with pytest.raises(UpstreamError) as info:
        for event in EventSplitter().feed(source):
            out.extend(translator.feed(event))
    assert info.value.status == 529
    assert info.value.to_dict()["error"]["type"] == "overloaded_error"
    assert b"".join(out) == (GOLDEN / "streams" / "overloaded.openai.sse").read_bytes()
    assert not translator.done


def _accumulate(sse: bytes) -> dict[str, Any]:
    """The final message the ``anthropic`` SDK builds from a stream."""
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for event in EventSplitter().feed(sse):
        data = event_data(event)
        if data is None:
            continue
        payload = json.loads(data)
        if payload["type"] == "ping":
            continue
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    message: dict[str, Any] = snapshot.to_dict()
    return message


@pytest.mark.parametrize("name", [n for n in STREAMS if n not in ("overloaded", "json_mode")])
def test_stream_roundtrip_through_messages_encoder(name: str) -> None:
    """Anthropic SSE → OpenAI chunks (adapter) → Anthropic SSE (/v1/messages) → same message."""
    original = (GOLDEN / "streams" / f"{name}.anthropic.sse").read_bytes()
    chunks, _ = _translate(name)
    encoder = AnthropicEncoder(MODEL)
    again = b"".join(out for event in EventSplitter().feed(chunks) for out in encoder.feed(event))
    before, after = _accumulate(original), _accumulate(again)
    assert after["id"] == before["id"] and after["model"] == before["model"]
    assert after["stop_reason"] == before["stop_reason"]
    assert _strip_signatures(after["content"]) == _strip_signatures(before["content"])
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens"):
        assert (after["usage"].get(key) or 0) == (before["usage"].get(key) or 0)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _load("errors")[0].values[0], ids=lambda c: c["description"])
def test_errors(case: dict[str, Any]) -> None:
    error = AnthropicAdapter().error(SPEC, case["status"], case["body"].encode(), case["headers"])
    assert error.status == case["openai_status"]
    assert error.to_dict() == case["openai"]
    assert error.headers == case["openai_headers"]
