"""Known-good request bodies of every endpoint, the starting points of the mutations.

Chat and Messages bodies come from the golden translation fixtures (``tests/golden``),
so every field a translator is known to handle is a mutation target; a few extra
bodies cover what the fixtures do not (Responses, embeddings, odd-but-valid shapes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent.parent / "golden"


def _golden(key: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(GOLDEN.glob("*/requests/*.json")):
        case = json.loads(path.read_text())
        if isinstance(case, dict) and isinstance(case.get(key), dict):
            out.append(case[key])
    return out


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

CHAT: list[dict[str, Any]] = [
    *(body for body in _golden("openai") if "messages" in body),
    {
        "model": "m",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "name": "bob",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64,iVBORw0KGgo=",
                            "detail": "high",
                        },
                    },
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {
                        "type": "file",
                        "file": {
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                            "filename": "a.pdf",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "15C"},
        ],
        "tools": [TOOL],
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 20,
        "stop": ["\n\n"],
        "seed": 1,
        "user": "u",
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "w",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {
                        "a": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        }
                    },
                },
            },
        },
        "reasoning_effort": "low",
        "stream_options": {"include_usage": True},
        "metadata": {"k": "v"},
        "parallel_tool_calls": True,
        "n": 1,
    },
]

EMBEDDINGS: list[dict[str, Any]] = [
    {"model": "m", "input": "hello"},
    {"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8},
    {"model": "m", "input": [[1, 2, 3]], "user": "u"},
]

MESSAGES: list[dict[str, Any]] = [
    *(body for body in _golden("anthropic") if "messages" in body),
    {
        "model": "m",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "sys"}],
        "metadata": {"user_id": "u"},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 3000},
        "tools": [
            {
                "name": "get_weather",
                "description": "w",
                "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0=",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"c": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "15C"},
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.test/a.png"},
                            },
                        ],
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "again",
                        "is_error": True,
                    },
                ],
            },
        ],
    },
]

# Every field and input item kind ``/v1/responses`` translates (also the unit test's input).
RESPONSES_FULL: dict[str, Any] = {
    "model": "m",
    "instructions": "Be brief.",
    "max_output_tokens": 50,
    "temperature": 0.3,
    "user": "u1",
    "store": True,
    "metadata": {"k": "v"},
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        }
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "text": {
        "format": {
            "type": "json_schema",
            "name": "w",
            "schema": {"type": "object"},
            "strict": True,
        }
    },
    "reasoning": {"effort": "low"},
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Paris?"},
                {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "id": "fc_1",
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "15C"},
    ],
}

RESPONSES: list[dict[str, Any]] = [
    {"model": "m", "input": "hello", "instructions": "be brief", "max_output_tokens": 20},
    RESPONSES_FULL,
]

#: Fields a client might add that the seeds do not carry (each endpoint's own).
CHAT_EXTRA = (
    "functions",
    "function_call",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "prediction",
    "service_tier",
    "store",
    "web_search_options",
    "frequency_penalty",
    "presence_penalty",
    "max_tokens",
    "verbosity",
)
MESSAGES_EXTRA = (
    "service_tier",
    "container",
    "mcp_servers",
    "output_config",
    "thread",
    "top_k",
    "thinking",
    "metadata",
    "system",
    "tool_choice",
    "stream",
)
RESPONSES_EXTRA = (
    "previous_response_id",
    "include",
    "truncation",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "background",
    "prompt",
    "conversation",
    "top_p",
)
