"""A stored answer in the other form: a ``chat.completion`` <-> its ``chat.completion.chunk``s.

One entry serves a streamed and a non-streamed call alike. :func:`chunks_of` turns a
stored completion into the chunk events a provider would have streamed (role, reasoning,
content, tool calls with their whole arguments, the finish, usage when the client asked
for it, ``[DONE]``), which the endpoint's encoder then turns into Anthropic or Responses
events like any upstream stream; :func:`completion_of` assembles a streamed answer into
the completion that is stored. Logprobs are not carried over (rarely cached, and their
per-token shape differs between the two forms).
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.providers.base import Usage
from llmrelay.sse import DONE, encode_json, event_data


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chunks_of(completion: bytes, usage: Usage | None, include_usage: bool) -> list[bytes]:
    """The SSE chunk events of a stored ``chat.completion`` (``[DONE]`` last)."""
    obj = orjson.loads(completion)
    head = {
        "id": obj.get("id", "chatcmpl-cached"),
        "object": "chat.completion.chunk",
        "created": obj.get("created", 0),
        "model": obj.get("model", ""),
    }
    if obj.get("system_fingerprint"):
        head["system_fingerprint"] = obj["system_fingerprint"]

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode_json(
            {
                **head,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    events: list[bytes] = []
    for choice in obj.get("choices") or []:
        index = int(choice.get("index") or 0)
        message = choice.get("message") or {}
        events.append(chunk(index, {"role": message.get("role") or "assistant", "content": ""}))
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events.append(chunk(index, {"reasoning_content": reasoning}))
        content = message.get("content")
        if isinstance(content, str) and content:
            events.append(chunk(index, {"content": content}))
        if message.get("refusal"):
            events.append(chunk(index, {"refusal": message["refusal"]}))
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            events.append(
                chunk(
                    index,
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call.get("id"),
                                "type": call.get("type", "function"),
                                "function": {
                                    "name": function.get("name"),
                                    "arguments": function.get("arguments") or "",
                                },
                            }
                        ]
                    },
                )
            )
        events.append(chunk(index, {}, choice.get("finish_reason") or "stop"))
    if include_usage and usage is not None:
        events.append(encode_json({**head, "choices": [], "usage": _usage_json(usage)}))
    events.append(DONE)
    return events


class _Choice:
    __slots__ = ("content", "finish", "reasoning", "refusal", "role", "tools")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] | None = None
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None

    def feed(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("role"), str):
            self.role = delta["role"]
        if isinstance(delta.get("content"), str):
            (self.content if self.content is not None else self._start()).append(delta["content"])
        if isinstance(delta.get("reasoning_content"), str):
            self.reasoning.append(delta["reasoning_content"])
        if isinstance(delta.get("refusal"), str):
            self.refusal.append(delta["refusal"])
        for part in delta.get("tool_calls") or []:
            tool = self.tools.setdefault(
                int(part.get("index") or 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if part.get("id"):
                tool["id"] = part["id"]
            function = part.get("function") or {}
            if function.get("name"):
                tool["function"]["name"] += function["name"]
            if function.get("arguments"):
                tool["function"]["arguments"] += function["arguments"]

    def _start(self) -> list[str]:
        self.content = []
        return self.content

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "content": None if self.content is None else "".join(self.content),
        }
        if self.reasoning:
            out["reasoning_content"] = "".join(self.reasoning)
        if self.refusal:
            out["refusal"] = "".join(self.refusal)
        if self.tools:
            out["tool_calls"] = [self.tools[i] for i in sorted(self.tools)]
        return out


def completion_of(events: list[bytes], usage: Usage | None) -> bytes | None:
    """The ``chat.completion`` a stream of chunk events adds up to (``None`` if they are
    not chunks: nothing to store)."""
    head: dict[str, Any] | None = None
    choices: dict[int, _Choice] = {}
    for event in events:
        data = event_data(event)
        if data is None or data == b"[DONE]":
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or obj.get("object") != "chat.completion.chunk":
            return None
        if head is None:
            head = {
                k: obj[k]
                for k in ("id", "created", "model", "system_fingerprint")
                if obj.get(k) is not None
            }
        for choice in obj.get("choices") or []:
            state = choices.setdefault(int(choice.get("index") or 0), _Choice())
            state.feed(choice.get("delta") or {})
            if choice.get("finish_reason"):
                state.finish = choice["finish_reason"]
    if head is None or not choices:
        return None
    completion: dict[str, Any] = {
        **head,
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": choices[i].message(),
                "logprobs": None,
                "finish_reason": choices[i].finish,
            }
            for i in sorted(choices)
        ],
    }
    if usage is not None:
        completion["usage"] = _usage_json(usage)
    return orjson.dumps(completion)
