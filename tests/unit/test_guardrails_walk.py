"""Which strings of each client shape are texts the guardrails check (and which are not)."""

from __future__ import annotations

from typing import Any

from llmrelay.guardrails.walk import rewrite_body


def _marked(body: dict[str, Any]) -> dict[str, Any]:
    rewrite_body(body, lambda text: f"<{text}>")
    return body


def test_chat_messages_parts_tool_calls_and_results() -> None:
    body = _marked(
        {
            "model": "m",
            "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
            "messages": [
                {"role": "system", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "result"},
            ],
        }
    )
    m = body["messages"]
    assert m[0] == {"role": "system", "content": "<sys>"}
    assert m[1]["content"][0]["text"] == "<hi>"
    assert m[1]["content"][1]["image_url"]["url"] == "data:image/png;base64,AAA"
    assert m[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '<{"a":1}>'}
    assert m[2]["tool_calls"][0]["id"] == "call_1"
    assert m[3]["content"] == "<result>" and m[3]["tool_call_id"] == "call_1"
    assert body["model"] == "m" and body["tools"][0]["function"]["description"] == "d"


def test_messages_system_blocks_tool_use_input_and_tool_results() -> None:
    body = _marked(
        {
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "send",
                            "input": {"to": "a@b.io", "cc": ["c@d.io"], "n": 2},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sent"},
                        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                    ],
                },
            ],
        }
    )
    assert body["system"][0]["text"] == "<sys>"
    thinking, tool_use = body["messages"][0]["content"]
    assert thinking == {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    assert tool_use["input"] == {"to": "<a@b.io>", "cc": ["<c@d.io>"], "n": 2}
    assert tool_use["id"] == "toolu_1" and tool_use["name"] == "send"
    result, image = body["messages"][1]["content"]
    assert result["content"] == "<sent>" and image["source"]["data"] == "AAAA"


def test_responses_input_items_and_embeddings_input() -> None:
    body = _marked(
        {
            "instructions": "be brief",
            "text": {"format": {"type": "text"}},
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
        }
    )
    assert body["instructions"] == "<be brief>"
    assert body["text"] == {"format": {"type": "text"}}
    items = body["input"]
    assert items[0]["content"][0]["text"] == "<hi>" and items[0]["role"] == "user"
    assert items[1]["arguments"] == "<{}>" and items[1]["call_id"] == "c1"
    assert items[2]["output"] == "<ok>"
    assert _marked({"input": "one"})["input"] == "<one>"
    assert _marked({"input": ["a", "b"]})["input"] == ["<a>", "<b>"]
    assert _marked({"input": [[1, 2, 3]]})["input"] == [[1, 2, 3]]  # token arrays


def test_answers_in_the_internal_and_passed_through_shapes() -> None:
    chat = _marked(
        {
            "id": "chatcmpl-1",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "x",
                        "tool_calls": [
                            {"id": "call_1", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    }
                }
            ],
        }
    )
    message = chat["choices"][0]["message"]
    assert (
        message["content"] == "<x>" and message["tool_calls"][0]["function"]["arguments"] == "<{}>"
    )
    assert chat["id"] == "chatcmpl-1"
    response = _marked(
        {
            "id": "resp_1",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "content": [{"type": "output_text", "text": "y"}],
                }
            ],
        }
    )
    assert response["output"][0]["content"][0]["text"] == "<y>"
    assert response["output"][0]["id"] == "msg_1"
