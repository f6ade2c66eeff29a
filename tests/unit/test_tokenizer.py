"""The bundled cl100k_base tokenizer (no network) and how chat prompts are counted."""

from __future__ import annotations

from llmrelay import tokenizer


def test_bundled_encoding_is_cl100k_base() -> None:
    enc = tokenizer.encoding()
    assert enc.name == "cl100k_base"
    # Reference values of cl100k_base (as tiktoken.get_encoding would give them).
    assert enc.encode_ordinary("hello world") == [15339, 1917]
    assert tokenizer.count_text("<|endoftext|>") > 1  # special tokens are plain text here
    assert tokenizer.count_text("") == 0


def test_chat_counting_rules() -> None:
    text = "hello there gateway"  # 3 tokens
    one = tokenizer.count_chat({"messages": [{"role": "user", "content": text}]})
    assert one == 3 + 3 + 1 + 3
    two = tokenizer.count_chat(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": text}]},
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
            ]
        }
    )
    calls = tokenizer.count_text("get_weather") + tokenizer.count_text('{"city": "Paris"}')
    assert two == 3 + (3 + 1 + 3) + (3 + 1 + calls)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with_tools = tokenizer.count_chat(
        {"messages": [{"role": "user", "content": text}], "tools": tools}
    )
    assert with_tools > one
