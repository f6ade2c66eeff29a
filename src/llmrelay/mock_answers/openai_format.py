"""Pure builders for OpenAI's wire format (chat completions, embeddings, models).

No I/O and no aiohttp here: every function maps request JSON to response JSON
(or SSE bytes), so the shapes can be unit-tested on their own and reused by
anything that needs to *produce* OpenAI-shaped data.  Randomness (ids) is
confined to the ``new_*_id`` helpers; builders take ids as arguments.

The shapes copy what api.openai.com returns today, including the fields
clients rarely read (``refusal``, ``annotations``, ``service_tier``,
``*_tokens_details``), because a gateway that re-serialises responses must not
lose them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
import string
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .json_instance import instance
from .tool_choice import Mode, pick_tool

SYSTEM_FINGERPRINT = "fp_6d6f636b00"
SERVICE_TIER = "default"
EMBEDDING_DIMS = 8
MAX_EMBEDDING_DIMS = 4096
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


def content_text(content: object) -> str:
    """Text of a message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """Text of the last ``user`` message; the default reply echoes it verbatim."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def count_words(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(messages: Sequence[Any]) -> int:
    """Word count over the text of every message."""
    return sum(
        count_words(content_text(m.get("content"))) for m in messages if isinstance(m, Mapping)
    )


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


def embeddings_request_error(body: object) -> tuple[str, str | None] | None:
    """``(message, param)`` when the body is not a usable embeddings request."""
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object.", None
    if not isinstance(body.get("model"), str):
        return "You must provide a model parameter.", "model"
    if not _embedding_inputs(body.get("input")):
        return "'input' must be a non-empty string or array.", "input"
    return None


# -- chat completions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What the assistant "says"; rendered as JSON or as a chunk stream.

    ``structured`` marks JSON content (a ``response_format`` answer): streams carry it in
    short fragments, as a model emits JSON, rather than word by word.
    """

    content: str | None
    tool_call: ToolCall | None
    finish_reason: str
    usage: dict[str, Any]
    structured: bool = False


def usage_block(
    prompt: int, completion: int, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAI's usage object; ``override`` keys replace the computed ones.

    ``total_tokens`` follows the (possibly overridden) prompt/completion counts
    unless it is overridden itself, so ``{"prompt_tokens": 1000}`` stays
    self-consistent for cost tests.
    """
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if override:
        usage.update(override)
        if "total_tokens" not in override:
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(p, int) and isinstance(c, int):
                usage["total_tokens"] = p + c
    return usage


def _tool_choice(choice: object) -> tuple[Mode, str | None, set[str] | None]:
    """``(mode, forced name, allowed names)`` of a chat ``tool_choice``."""
    if choice in ("none", "auto", "required"):
        return choice, None, None
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        return "named", name if isinstance(name, str) else None, None
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        spec = spec if isinstance(spec, Mapping) else {}
        allowed = {
            str((t.get("function") or {}).get("name"))
            for t in spec.get("tools") or []
            if isinstance(t, Mapping)
        }
        return ("required" if spec.get("mode") == "required" else "auto"), None, allowed
    return "auto", None, None


def _tool_to_call(
    body: Mapping[str, Any], messages: Sequence[Any], text: str, *, after_results: bool
) -> Mapping[str, Any] | None:
    """The ``function`` object of the tool this request gets a call to, if any
    (the rule of :mod:`.tool_choice`)."""
    functions = [
        tool["function"]
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), Mapping)
        and isinstance(tool["function"].get("name"), str)
    ]
    mode, forced, allowed = _tool_choice(body.get("tool_choice"))
    if allowed is not None:
        functions = [f for f in functions if f["name"] in allowed]
    called = {
        str((call.get("function") or {}).get("name"))
        for message in messages
        if isinstance(message, Mapping)
        for call in message.get("tool_calls") or []
        if isinstance(call, Mapping)
    }
    index = pick_tool(
        [f["name"] for f in functions],
        mode=mode,
        text=text,
        forced=forced,
        called=called,
        after_results=after_results,
    )
    return None if index is None else functions[index]


def structured_content(body: Mapping[str, Any], text: str) -> str | None:
    """The JSON a ``response_format`` asks for, or ``None`` for plain text.

    ``json_schema``: an instance of the schema built from ``text``
    (:mod:`.json_instance`); ``json_object``: the text itself when it is a JSON object,
    else ``{"text": text}``.
    """
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        value = instance(schema if isinstance(schema, Mapping) else {"type": "object"}, text)
        return orjson.dumps(value).decode()
    if kind == "json_object":
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        return text if isinstance(parsed, dict) else orjson.dumps({"text": text}).decode()
    return None


def plan_chat_reply(
    body: Mapping[str, Any],
    *,
    reply: str | None = None,
    usage: Mapping[str, Any] | None = None,
    tool_call_id: str = "call_mock",
) -> ChatReply:
    """Decide the reply for a chat request.

    Default: the last user text verbatim.  A tool call when ``tool_choice`` and the
    conversation say so (:mod:`.tool_choice`: forced, or the text says "tool"), its
    arguments an instance of the tool's ``parameters`` schema built from the text
    (:mod:`.json_instance`).  Right after a tool turn (the conversation ends with
    ``tool`` messages) and no forced call, the reply is the tools' output, so tool loops
    end.  A ``response_format`` gets JSON content (:func:`structured_content`).  An
    explicit ``reply`` always wins (plain text).  Completion tokens are the words of
    the reply (of name + arguments for a tool call).
    """
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    prompt = prompt_tokens(messages)
    text = last_user_text(messages)
    results = [m for m in reversed(messages) if isinstance(m, Mapping)]
    results = results[
        : next((i for i, m in enumerate(results) if m.get("role") != "tool"), len(results))
    ]
    function = None
    if reply is None:
        function = _tool_to_call(body, messages, text, after_results=bool(results))
    if function is not None:
        schema = function.get("parameters")
        arguments = orjson.dumps(
            instance(schema if isinstance(schema, Mapping) else {"type": "object"}, text)
        ).decode()
        call = ToolCall(id=tool_call_id, name=str(function["name"]), arguments=arguments)
        completion = count_words(call.name) + count_words(call.arguments)
        return ChatReply(None, call, "tool_calls", usage_block(prompt, completion, usage))
    if results and reply is None:
        reply = "".join(content_text(m.get("content")) for m in reversed(results))
    structured = structured_content(body, text) if reply is None else None
    if structured is not None:
        return ChatReply(
            structured,
            None,
            "stop",
            usage_block(prompt, count_words(structured), usage),
            structured=True,
        )
    content = text if reply is None else reply
    return ChatReply(content, None, "stop", usage_block(prompt, count_words(content), usage))


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


# -- embeddings --------------------------------------------------------------------


def _embedding_inputs(value: object) -> list[str | list[int]]:
    """Normalise ``input``: string, list of strings, token list, list of token lists."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [list(value)]
    items: list[str | list[int]] = []
    for item in value:
        if isinstance(item, str):
            items.append(item)
        elif isinstance(item, list) and all(isinstance(v, int) for v in item):
            items.append(list(item))
        else:
            return []
    return items


def embedding_vector(item: str | Sequence[int], dims: int = EMBEDDING_DIMS) -> list[float]:
    """Unit-length vector derived from a hash of the input.

    Values are rounded to float32 so the ``float`` and ``base64`` encodings of
    the same input decode to identical numbers.
    """
    data = item.encode() if isinstance(item, str) else orjson.dumps(list(item))
    digest = hashlib.shake_256(data).digest(2 * dims)
    raw = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dims}H", digest)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


#: The embeddings model whose vectors carry meaning (of a kind): a bag of words.
BAG_OF_WORDS = "bag-of-words"
BAG_OF_WORDS_DIMS = 256


def bag_of_words_vector(text: str, dims: int = BAG_OF_WORDS_DIMS) -> list[float]:
    """Unit-length counts of the text's lowercase words, each hashed to one dimension
    with a sign (the hashing trick): the same words in any order, case or punctuation
    give similarity 1.0; one word of six changed gives about 0.83. So the semantic cache
    can be tested offline against a model whose similarity is predictable."""
    raw = [0.0] * dims
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        digest = hashlib.shake_256(word.encode()).digest(4)
        slot = int.from_bytes(digest[:3], "little") % dims
        raw[slot] += 1.0 if digest[3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


def embeddings_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``list`` object for a validated embeddings request (``*bag-of-words`` models:
    :func:`bag_of_words_vector`; any other: a hash of the input)."""
    bag = str(body.get("model") or "").endswith(BAG_OF_WORDS)
    dims = body.get("dimensions")
    if not isinstance(dims, int) or isinstance(dims, bool) or not 0 < dims <= MAX_EMBEDDING_DIMS:
        dims = BAG_OF_WORDS_DIMS if bag else EMBEDDING_DIMS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(_embedding_inputs(body.get("input"))):
        vector = (
            bag_of_words_vector(item, dims)
            if bag and isinstance(item, str)
            else embedding_vector(item, dims)
        )
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens += count_words(item) if isinstance(item, str) else len(item)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


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
