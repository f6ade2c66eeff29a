"""Pure builders for OpenAI's wire format (chat completions, embeddings, models).

No I/O and no aiohttp here: every function maps request JSON to response JSON
(or SSE bytes), so the shapes can be unit-tested on their own and reused by
anything that needs to *produce* OpenAI-shaped data.  Randomness (ids) is
confined to the ``new_*_id`` helpers; builders take ids as arguments.

The shapes copy what api.openai.com returns today, including the fields
clients rarely read (``refusal``, ``annotations``, ``service_tier``,
``*_tokens_details``), because a gateway that re-serialises responses must not
lose them.

This module is the one namespace of the OpenAI format (``from llmrelay.mock_answers
import openai_format as oa``): it renders chat completions and their chunk streams,
models and errors, and re-exports (``__all__``) the reply decision of
:mod:`.openai_reply` and the embeddings of :mod:`.openai_embeddings`.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .openai_embeddings import (
    BAG_OF_WORDS,
    BAG_OF_WORDS_DIMS,
    EMBEDDING_DIMS,
    MAX_EMBEDDING_DIMS,
    bag_of_words_vector,
    embedding_vector,
    embeddings_request_error,
    embeddings_response,
)
from .openai_reply import (
    ChatReply,
    ToolCall,
    content_text,
    count_words,
    last_user_text,
    plan_chat_reply,
    prompt_tokens,
    structured_content,
    usage_block,
)

__all__ = [
    "BAG_OF_WORDS",
    "BAG_OF_WORDS_DIMS",
    "DEFAULT_MODELS",
    "EMBEDDING_DIMS",
    "MAX_EMBEDDING_DIMS",
    "SERVICE_TIER",
    "SSE_DONE",
    "SYSTEM_FINGERPRINT",
    "ChatReply",
    "ToolCall",
    "bag_of_words_vector",
    "chat_chunks",
    "chat_completion",
    "chat_request_error",
    "content_pieces",
    "content_text",
    "count_words",
    "embedding_vector",
    "embeddings_request_error",
    "embeddings_response",
    "encode_sse",
    "error_body",
    "fragments",
    "include_usage_requested",
    "last_user_text",
    "models_response",
    "new_completion_id",
    "new_request_id",
    "new_tool_call_id",
    "plan_chat_reply",
    "prompt_tokens",
    "split_words",
    "structured_content",
    "usage_block",
]

SYSTEM_FINGERPRINT = "fp_6d6f636b00"
SERVICE_TIER = "default"
SSE_DONE = b"data: [DONE]\n\n"

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)

_ALNUM = string.ascii_letters + string.digits
# Zero-width split between a non-space and a space: "a b  c" -> "a", " b", "  c".
# Joining the pieces gives back the exact text, which tests rely on.
_WORD_BOUNDARY = re.compile(r"(?<=\S)(?=\s)")


# -- ids ---------------------------------------------------------------------------


def _random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_completion_id() -> str:
    """``chatcmpl-`` + 29 characters, like OpenAI's."""
    return "chatcmpl-" + _random_alnum(29)


def new_tool_call_id() -> str:
    return "call_" + _random_alnum(24)


def new_request_id() -> str:
    """Value of the ``x-request-id`` response header."""
    return "req_" + secrets.token_hex(16)


# -- reading requests --------------------------------------------------------------


# -- reading requests --------------------------------------------------------------


def chat_request_error(body: object) -> tuple[str, str | None] | None:
    """``(message, param)`` when the body is not a usable chat request, else ``None``."""
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object.", None
    if not isinstance(body.get("model"), str):
        return "You must provide a model parameter.", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array.", "messages"
    return None


# -- chat completions --------------------------------------------------------------


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def chat_completion(
    *, completion_id: str, created: int, model: str, reply: ChatReply
) -> dict[str, Any]:
    """A non-stream ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_call is not None:
        message["tool_calls"] = [_tool_call_json(reply.tool_call)]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": reply.usage,
        "service_tier": SERVICE_TIER,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def split_words(text: str) -> list[str]:
    """Split into one piece per word whose concatenation is exactly ``text``.

    Leading whitespace rides with the following word (like BPE tokens);
    trailing whitespace rides with the last word, so the piece count equals
    the completion token count.
    """
    pieces = [piece for piece in _WORD_BOUNDARY.split(text) if piece]
    if len(pieces) > 1 and pieces[-1].isspace():
        pieces[-2:] = [pieces[-2] + pieces[-1]]
    return pieces


def fragments(json_text: str) -> list[str]:
    """JSON text (tool arguments, structured content) in the short pieces a model streams:
    at least two when possible, so clients must accumulate them."""
    size = max(1, min(8, len(json_text) // 2))
    return [json_text[i : i + size] for i in range(0, len(json_text), size)]


def content_pieces(reply: ChatReply) -> list[str]:
    """The content deltas of a streamed reply: words, or fragments of JSON content."""
    text = reply.content or ""
    return fragments(text) if reply.structured else split_words(text)


def chat_chunks(
    *,
    completion_id: str,
    created: int,
    model: str,
    reply: ChatReply,
    include_usage: bool,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, without ``[DONE]``.

    With ``include_usage`` every chunk carries ``"usage": null`` and a final
    chunk with ``choices: []`` carries the usage, exactly as OpenAI does;
    without it no chunk has a ``usage`` key.
    """

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": SERVICE_TIER,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            out["usage"] = None
        return out

    chunks: list[dict[str, Any]] = []
    call = reply.tool_call
    if call is not None:
        head = {"index": 0, "id": call.id, "type": "function"}
        head["function"] = {"name": call.name, "arguments": ""}
        chunks.append(chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
        chunks.extend(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
            for fragment in fragments(call.arguments)
        )
    else:
        chunks.append(chunk({"role": "assistant", "content": ""}))
        chunks.extend(chunk({"content": piece}) for piece in content_pieces(reply))
    chunks.append(chunk({}, reply.finish_reason))
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = reply.usage
        chunks.append(final)
    return chunks


def encode_sse(obj: object) -> bytes:
    """One SSE event as OpenAI frames it: ``data: {json}\\n\\n``."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def include_usage_requested(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


# -- models ------------------------------------------------------------------------


def models_response(models: Sequence[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": created, "owned_by": "openai"}
            for model in models
        ],
    }


# -- errors ------------------------------------------------------------------------

#: status -> (type, code, message), mirroring what OpenAI sends for each status.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "permission_denied", "You are not allowed to do this."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    409: ("invalid_request_error", None, "The request conflicts with another request."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def error_body(
    status: int,
    *,
    message: str | None = None,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """``{"error": {message, type, param, code}}`` with defaults for ``status``."""
    fallback = (
        ("server_error", None, "Internal server error.")
        if status >= 500
        else ("invalid_request_error", None, "Invalid request.")
    )
    default_type, default_code, default_message = _ERRORS.get(status, fallback)
    return {
        "error": {
            "message": message if message is not None else default_message,
            "type": error_type if error_type is not None else default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }
