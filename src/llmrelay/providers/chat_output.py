"""Writing OpenAI's answer shapes for translating adapters (Gemini, Bedrock, ...).

:func:`upstream_object` reads the provider's answer (a body that is not JSON is the
upstream's fault: 502). :func:`completion` builds a non-streaming ``chat.completion``,
:func:`embeddings_list` an embeddings ``list``; :class:`ChunkWriter`
is the output half of every translating stream: the provider-specific translator
decides *what* happened (text, a tool call started, arguments arrived, a choice
finished, usage is known), the writer turns it into ``chat.completion.chunk`` events
exactly as OpenAI frames them, including ``"usage": null`` on every chunk and a final
``choices: []`` usage chunk when the client asked with ``stream_options``.
"""

from __future__ import annotations

import base64
import sys
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmrelay.errors import UpstreamInvalidResponse
from llmrelay.providers.base import ChatResult, Usage
from llmrelay.providers.stream_state import SHAPE_ERRORS
from llmrelay.sse import DONE, encode_json


@contextmanager
def answer_shape(provider: str) -> Iterator[None]:
    """Reading a non-streamed answer: a body whose fields have types the provider never
    sends (``"candidates": 5``, a tool input nested deeper than orjson encodes) is a
    502 of the adapter's own, as a body that is not JSON is (the router has the same
    net for every adapter: ``routing/router.py``)."""
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise UpstreamInvalidResponse(
            provider, "a body that is not of the provider's answer shape"
        ) from exc


def upstream_json(provider: str, body: bytes) -> Any:
    """The provider's answer parsed; a body that is not JSON fails the call with 502."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamInvalidResponse(provider, "a body that is not JSON") from exc


def upstream_object(provider: str, body: bytes) -> dict[str, Any]:
    """Like :func:`upstream_json` for answers that must be a JSON object."""
    parsed = upstream_json(provider, body)
    if not isinstance(parsed, dict):
        raise UpstreamInvalidResponse(provider, "JSON that is not an object")
    return parsed


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


@dataclass(slots=True)
class ToolCallOut:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ChoiceOut:
    """One translated choice of a non-streaming answer."""

    index: int = 0
    text: str | None = None
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.text,
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return message


def completion(
    completion_id: str,
    model: str,
    choices: list[ChoiceOut],
    usage: Usage | None,
    created: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "message": c.message(),
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
    }
    if usage is not None:
        out["usage"] = usage_json(usage)
    return out


class ChunkWriter:
    """Encodes translated stream happenings as OpenAI chunk events (SSE bytes)."""

    __slots__ = ("_created", "_id", "_model", "_started", "_tool_counts", "_wants_usage")

    def __init__(self, completion_id: str, model: str, wants_usage: bool) -> None:
        self._id = completion_id
        self._model = model
        self._created = int(time.time())
        self._wants_usage = wants_usage
        self._started: set[int] = set()
        self._tool_counts: dict[int, int] = {}

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if self._wants_usage:
            chunk["usage"] = None
        return encode_json(chunk)

    def start(self, index: int = 0) -> list[bytes]:
        """The opening ``role: assistant`` chunk of a choice (once)."""
        if index in self._started:
            return []
        self._started.add(index)
        return [self._chunk(index, {"role": "assistant", "content": ""})]

    def text(self, text: str, index: int = 0) -> list[bytes]:
        if not text:
            return []
        return [*self.start(index), self._chunk(index, {"content": text})]

    def tool_start(
        self, call_id: str, name: str, arguments: str = "", index: int = 0
    ) -> tuple[int, list[bytes]]:
        """A tool call begins; returns its position among the choice's tool calls."""
        position = self._tool_counts.get(index, 0)
        self._tool_counts[index] = position + 1
        delta = {
            "tool_calls": [
                {
                    "index": position,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ]
        }
        return position, [*self.start(index), self._chunk(index, delta)]

    def tool_arguments(self, position: int, fragment: str, index: int = 0) -> list[bytes]:
        if not fragment:
            return []
        delta = {"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}
        return [self._chunk(index, delta)]

    def finish(self, reason: str, index: int = 0) -> list[bytes]:
        return [*self.start(index), self._chunk(index, {}, reason)]

    def close(self, usage: Usage | None) -> list[bytes]:
        """The usage chunk (when the client asked and usage is known), then ``[DONE]``."""
        out: list[bytes] = []
        if self._wants_usage and usage is not None:
            out.append(
                encode_json(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": usage_json(usage),
                    }
                )
            )
        out.append(DONE)
        return out


#: ``ChatResult.extra`` flag of translated embeddings: vectors are float lists, which
#: the endpoint encodes when the client asked for ``encoding_format: base64``.
FLOAT_EMBEDDINGS = "float_embeddings"


def embeddings_list(provider: str, vectors: list[Any], model: str, tokens: int) -> ChatResult:
    """OpenAI's embeddings ``list`` of float vectors, billed as ``tokens`` prompt tokens.

    A vector that is not a list of numbers is no embedding (a client would fail on it,
    and :func:`embeddings_as_base64` could not pack it): the answer is a 502. The check
    is a conversion in C (``array``), not a loop over the floats.
    """
    for vector in vectors:
        try:
            if not isinstance(vector, list):
                raise TypeError("not a list")
            array("d", vector)
        except (TypeError, OverflowError):
            raise UpstreamInvalidResponse(
                provider, "an embedding that is not a list of numbers"
            ) from None
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    obj = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return ChatResult(orjson.dumps(obj), usage, extra={FLOAT_EMBEDDINGS: True})


def embeddings_as_base64(body: bytes) -> bytes:
    """Float-list embeddings (of :func:`embeddings_list`, so numbers) -> OpenAI's base64
    form (little-endian float32; a value beyond float32's range becomes infinity, where
    ``struct.pack`` would raise)."""
    parsed = orjson.loads(body)
    for item in parsed.get("data") or ():
        vector = item.get("embedding")
        if isinstance(vector, list):
            packed = array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            item["embedding"] = base64.b64encode(packed.tobytes()).decode()
    return orjson.dumps(parsed)
