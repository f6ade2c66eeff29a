"""Property: any JSON-shaped body either translates or raises a :class:`GatewayError`.

The request translators are pure functions of the client's body (after the endpoint's
``validate``), so hypothesis drives them directly with mutated bodies: a field of the
wrong type, removed, or nested deep must end in a clean 4xx (an ``InvalidRequest`` that
names the field), never in a ``TypeError`` that the HTTP layer would turn into a 500.
What a translator does produce must also be sendable: its body is bytes of JSON.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given

from llmrelay.api.chat import ChatCompletionsCodec
from llmrelay.api.embeddings import EmbeddingsCodec
from llmrelay.api.messages import MessagesCodec
from llmrelay.api.messages_translate import to_chat as messages_to_chat
from llmrelay.api.responses import ResponsesCodec
from llmrelay.api.responses_translate import to_chat as responses_to_chat
from llmrelay.asgi import Request
from llmrelay.context import Call
from llmrelay.errors import GatewayError
from llmrelay.pipeline import parse_json
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.azure import AzureOpenAIAdapter
from llmrelay.providers.base import Adapter, ProviderSpec
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.gemini import GeminiAdapter, VertexAdapter
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.routing.config import RouteConfigError, parse_route_config
from tests.fuzz import seeds
from tests.fuzz.mutations import ROUTE_CONFIGS, fuzz_settings, json_values, mutated

ADAPTERS: list[tuple[Adapter, ProviderSpec]] = [
    (
        OpenAICompatAdapter(),
        ProviderSpec(
            name="up", type="openai_compatible", base_url="https://api.example.test/v1", api_key="k"
        ),
    ),
    (
        AnthropicAdapter(),
        ProviderSpec(
            name="claude", type="anthropic", base_url="https://api.anthropic.com/v1", api_key="k"
        ),
    ),
    (
        GeminiAdapter(),
        ProviderSpec(
            name="gemini",
            type="gemini",
            base_url="https://generativelanguage.googleapis.com/v1beta",
            api_key="k",
        ),
    ),
    (
        VertexAdapter(),
        ProviderSpec(
            name="vertex",
            type="vertex",
            base_url="https://us-central1-aiplatform.googleapis.com/v1",
            api_key=None,
            project="p",
            location="us-central1",
        ),
    ),
    (
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
    ),
    (
        AzureOpenAIAdapter(),
        ProviderSpec(
            name="azure",
            type="azure",
            base_url="https://r.openai.azure.com/openai/",
            api_key="k",
            api_version="2024-10-21",
        ),
    ),
]


def _sendable(adapter: Adapter, spec: ProviderSpec, chat: dict[str, Any], stream: bool) -> None:
    """Every adapter either builds a request whose body is JSON, or refuses cleanly."""
    try:
        call = adapter.chat_request(spec, chat, "the-model", stream)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
        return
    assert isinstance(call.body, bytes)
    orjson.loads(call.body)


async def _no_receive() -> dict[str, Any]:
    raise AssertionError("a codec does no I/O")


def _client(codec: Any, body: Any) -> dict[str, Any] | None:
    """The body as the pipeline hands it on (parsed, validated), or None if refused.

    The stdlib encoder writes what orjson could not (deeper than 254 levels).
    """
    scope = {"type": "http", "path": codec.route, "method": "POST", "headers": []}
    call = Call.start(Request(scope, _no_receive), codec.route)
    try:
        parsed = parse_json(json.dumps(body).encode())
        codec.parse(call, parsed)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
        return None
    return parsed


@fuzz_settings(500)
@given(mutated(seeds.CHAT, seeds.CHAT_EXTRA))
def test_chat_body_translates_or_is_refused(body: dict[str, Any]) -> None:
    body = _client(ChatCompletionsCodec(), body)
    if body is None:
        return
    for adapter, spec in ADAPTERS:
        _sendable(adapter, spec, body, bool(body.get("stream")))


@fuzz_settings(100)
@given(mutated(seeds.EMBEDDINGS, ("dimensions", "encoding_format", "input_type", "user")))
def test_embeddings_body_translates_or_is_refused(body: dict[str, Any]) -> None:
    body = _client(EmbeddingsCodec(), body)
    if body is None:
        return
    for adapter, spec in ADAPTERS:
        build = getattr(adapter, "embeddings_request", None)
        if build is None:
            continue
        # Bedrock picks the request shape by model family.
        for model in ("the-model", "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"):
            try:
                call = build(spec, body, model)
            except GatewayError as exc:
                assert 400 <= exc.status < 500, exc
                continue
            orjson.loads(call.body)


@fuzz_settings(400)
@given(mutated(seeds.MESSAGES, seeds.MESSAGES_EXTRA))
def test_messages_body_translates_or_is_refused(body: dict[str, Any]) -> None:
    body = _client(MessagesCodec(), body)
    if body is None:
        return
    try:
        native = AnthropicAdapter().messages_request(
            ADAPTERS[1][1], body, "m", bool(body.get("stream")), None
        )
        orjson.loads(native.body)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
    try:
        chat = messages_to_chat(body)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
        return
    orjson.dumps(chat)
    for adapter, spec in ADAPTERS:
        _sendable(adapter, spec, chat, bool(chat.get("stream")))


@fuzz_settings(400)
@given(mutated(seeds.RESPONSES, seeds.RESPONSES_EXTRA))
def test_responses_body_translates_or_is_refused(body: dict[str, Any]) -> None:
    body = _client(ResponsesCodec(), body)
    if body is None:
        return
    try:
        chat = responses_to_chat(body, "the-provider")
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc
        return
    orjson.dumps(chat)
    for adapter, spec in ADAPTERS:
        _sendable(adapter, spec, chat, bool(chat.get("stream")))


@pytest.mark.parametrize(
    "endpoint",
    [ChatCompletionsCodec(), EmbeddingsCodec(), MessagesCodec(), ResponsesCodec()],
    ids=["chat", "embeddings", "messages", "responses"],
)
@fuzz_settings(100)
@given(body=json_values)
def test_any_json_is_validated_cleanly(endpoint: Any, body: Any) -> None:
    """Not even an object: validate is only reached with a dict, but must not crash on one
    of any content."""
    if isinstance(body, dict):
        _client(endpoint, body)


@fuzz_settings(300)
@given(ROUTE_CONFIGS | json_values)
def test_route_config_parses_or_is_refused(raw: Any) -> None:
    """A client's ``x-llmrelay-config``: parsed, or a RouteConfigError naming the field."""
    try:
        parse_route_config(raw)
    except RouteConfigError as exc:
        assert isinstance(exc.path, str)
