"""The Anthropic adapter's rules beyond the golden fixtures: refusals, drops, URLs, headers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from llmrelay.errors import CapabilityMissing, InvalidRequest, UnsupportedParameter
from llmrelay.providers.anthropic import AnthropicAdapter
from llmrelay.providers.anthropic_request import to_anthropic
from llmrelay.providers.base import ProviderSpec

SPEC = ProviderSpec(
    name="claude",
    type="anthropic",
    base_url="https://api.anthropic.com/v1",
    api_key="sk-ant-secret",
)
USER = [{"role": "user", "content": "hi"}]


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": USER, **extra}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("seed", 42),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("reasoning_effort", "high"),
        ("store", True),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "f"}]),
        ("verbosity", "low"),
    ],
)
def test_unsupported_parameters_are_refused_by_name(param: str, value: Any) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        to_anthropic(SPEC, _body(**{param: value}), "claude-x", False)
    assert info.value.param == param
    assert info.value.status == 400
    assert f"'{param}'" in info.value.message and "drop_params" in info.value.message


def test_drop_params_drops_instead() -> None:
    out = to_anthropic(
        replace(SPEC, drop_params=True),
        _body(seed=1, n=2, frequency_penalty=1, logprobs=True),
        "claude-x",
        False,
    )
    assert not {"seed", "n", "frequency_penalty", "logprobs"} & set(out)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 1),
        ("frequency_penalty", 0),
        ("presence_penalty", 0),
        ("logprobs", False),
        ("store", False),
        ("modalities", ["text"]),
        ("seed", None),
    ],
)
def test_neutral_values_are_accepted_and_not_sent(param: str, value: Any) -> None:
    out = to_anthropic(SPEC, _body(**{param: value}), "claude-x", False)
    assert param not in out


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_body(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0]"),
        (
            _body(
                messages=[
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{not json"},
                            }
                        ],
                    }
                ]
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0]",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0]",
        ),
        (_body(messages=[{"role": "function", "name": "f", "content": "x"}]), "messages[0].role"),
        (_body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (
            _body(tools=[{"type": "function", "function": {"name": "llmrelay_json_output"}}]),
            "tools",
        ),
        (_body(response_format={"type": "xml"}), "response_format"),
    ],
)
def test_untranslatable_input_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_anthropic(SPEC, body, "claude-x", False)
    assert info.value.param == param


def test_json_schema_that_is_not_an_object_goes_to_the_prompt() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "l", "schema": {"type": "array"}}}
    out = to_anthropic(SPEC, _body(response_format=fmt), "claude-x", False)
    assert "tools" not in out
    assert out["system"] == (
        "Respond only with a single valid JSON value that follows this "
        'JSON schema, without any other text: {"type":"array"}'
    )


def test_parallel_tool_calls_false_without_tool_choice() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = to_anthropic(SPEC, _body(tools=tools, parallel_tool_calls=False), "claude-x", False)
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    "base",
    [
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com",
        "https://api.anthropic.com/v1/",
        "http://proxy:8080/v1",
    ],
)
def test_url_with_or_without_v1(base: str) -> None:
    call = AnthropicAdapter().chat_request(replace(SPEC, base_url=base), _body(), "c", False)
    assert call.url.endswith("/v1/messages") and "/v1/v1" not in call.url


def test_headers_carry_key_version_and_extras() -> None:
    spec = replace(SPEC, headers=(("anthropic-beta", "prompt-caching-2024-07-31"),))
    call = AnthropicAdapter().chat_request(spec, _body(), "claude-x", True)
    assert call.headers["x-api-key"] == "sk-ant-secret"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "authorization" not in call.headers
    assert orjson.loads(call.body)["stream"] is True


def test_models_request_and_parse() -> None:
    adapter = AnthropicAdapter()
    call = adapter.models_request(SPEC)
    assert call is not None and call.method == "GET"
    assert call.url == "https://api.anthropic.com/v1/models?limit=1000"
    body = orjson.dumps(
        {
            "data": [
                {
                    "type": "model",
                    "id": "claude-sonnet-4-5-20250929",
                    "display_name": "Claude Sonnet 4.5",
                    "created_at": "2025-09-29T00:00:00Z",
                }
            ],
            "has_more": False,
            "first_id": "claude-sonnet-4-5-20250929",
            "last_id": "claude-sonnet-4-5-20250929",
        }
    )
    assert adapter.parse_models(body) == ["claude-sonnet-4-5-20250929"]


def test_no_embeddings() -> None:
    with pytest.raises(CapabilityMissing, match="cannot serve embeddings") as caught:
        AnthropicAdapter().embeddings_request(SPEC, {"model": "x", "input": "y"}, "x")
    assert caught.value.status == 400 and caught.value.code == "unsupported_endpoint"
