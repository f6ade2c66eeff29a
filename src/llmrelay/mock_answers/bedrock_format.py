"""Pure builders for AWS Bedrock's wire format: Converse, ConverseStream, InvokeModel.

ConverseStream answers in the AWS event-stream binary framing; :func:`encode_frame`
writes real frames (prelude with lengths and CRC32, typed headers, payload, message
CRC32) that botocore's own parser accepts. Event payloads carry AWS's ``p`` padding
field like the real service, so a client that chokes on unknown fields shows up here.
No I/O here.
"""

from __future__ import annotations

import binascii
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import openai_format as oa
from .gemini_format import mock_arguments
from .tool_choice import Mode, pick_tool

#: The mock's AWS credentials: access key id -> secret key. Requests are checked with a
#: real SigV4 verification, so a gateway that signs wrongly fails here.
MOCK_ACCESS_KEY_ID = "AKIAMOCKRELAY0EXAMPLE"
MOCK_SECRET_ACCESS_KEY = "mock/Secret+Key/relay0000000000EXAMPLEKEY"
CREDENTIALS = {MOCK_ACCESS_KEY_ID: MOCK_SECRET_ACCESS_KEY}
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
_ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"

FOUNDATION_MODELS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("anthropic.claude-3-haiku-20240307-v1:0", "Anthropic", ("TEXT",), ("ON_DEMAND",)),
    ("meta.llama3-8b-instruct-v1:0", "Meta", ("TEXT",), ("ON_DEMAND",)),
    ("amazon.titan-embed-text-v2:0", "Amazon", ("EMBEDDING",), ("ON_DEMAND",)),
    ("cohere.embed-english-v3", "Cohere", ("EMBEDDING",), ("ON_DEMAND",)),
    ("anthropic.claude-3-7-sonnet-20250219-v1:0", "Anthropic", ("TEXT",), ("INFERENCE_PROFILE",)),
)
_ERRORS = {
    400: (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    ),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def error(
    status: int, message: str | None = None, kind: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(http status, body, headers)`` of a Bedrock error; 401 is sent as AWS's 403."""
    default_kind, default_message = _ERRORS.get(
        status,
        ("InternalServerException" if status >= 500 else "ValidationException", "Request failed."),
    )
    kind = kind or default_kind
    headers = {
        "x-amzn-ErrorType": f"{kind}:{_ERROR_NAMESPACE}",
        "x-amzn-RequestId": new_request_id(),
    }
    return (403 if status == 401 else status), {"message": message or default_message}, headers


def new_request_id() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- event-stream frames ----------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only, as Bedrock sends)."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event_frame(event_type: str, body: Mapping[str, Any]) -> bytes:
    payload = orjson.dumps({**body, "p": _PADDING[: 1 + len(event_type)]})
    return encode_frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        payload,
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )


# -- Converse -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    tool: tuple[str, str, dict[str, Any]] | None  # (toolUseId, name, input)
    stop: str
    prompt: int
    completion: int


def request_error(body: object) -> str | None:
    if not isinstance(body, Mapping):
        return "Malformed input request: expected a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Malformed input request: #: required key [messages] not found"
    previous = None
    for message in messages:
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant"):
            return "Malformed input request: messages.role must be user or assistant"
        if role == previous:
            return (
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )
        previous = role
        for block in message.get("content") or ():
            if isinstance(block, Mapping) and block.get("text") == "":
                return (
                    "The text field in the ContentBlock object is blank. Add text to the "
                    "text field, and try again."
                )
    if messages[0].get("role") != "user":
        return (
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    return None


def _texts(blocks: Any) -> list[str]:
    return [
        b["text"] for b in blocks or () if isinstance(b, Mapping) and isinstance(b.get("text"), str)
    ]


def plan_reply(body: Mapping[str, Any], reply: str | None = None) -> Reply:
    messages = body.get("messages") or []
    prompt = sum(oa.count_words(t) for m in messages for t in _texts(m.get("content")))
    prompt += sum(oa.count_words(t) for t in _texts(body.get("system")))
    blocks = messages[-1].get("content") or [] if messages else []
    results = [
        b["toolResult"]
        for b in blocks
        if isinstance(b, Mapping) and isinstance(b.get("toolResult"), Mapping)
    ]
    text = " ".join(_texts(blocks))
    tool = _tool_to_use(body, text)
    if reply is None and tool is not None and not results:
        spec = tool["toolSpec"]
        args = mock_arguments((spec.get("inputSchema") or {}).get("json"), text)
        use_id = "tooluse_" + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")
        completion = oa.count_words(str(spec["name"])) + len(args)
        return Reply(None, (use_id, str(spec["name"]), args), "tool_use", prompt, completion)
    if reply is None and results:
        reply = "; ".join(
            f"{r.get('toolUseId')} returned {orjson.dumps(r.get('content')).decode()}"
            for r in results
        )
    content = text if reply is None else reply
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    words = oa.split_words(content)
    if isinstance(limit, int) and len(words) > limit:
        return Reply("".join(words[:limit]), None, "max_tokens", prompt, limit)
    return Reply(content, None, "end_turn", prompt, oa.count_words(content))


def _tool_to_use(body: Mapping[str, Any], text: str) -> Mapping[str, Any] | None:
    config = body.get("toolConfig") or {}
    tools = [t for t in config.get("tools") or () if isinstance(t.get("toolSpec"), Mapping)]
    if not tools:
        return None
    choice = config.get("toolChoice") or {"auto": {}}
    mode: Mode = "named" if "tool" in choice else "required" if "any" in choice else "auto"
    forced = (choice.get("tool") or {}).get("name")
    index = pick_tool(
        [str(t["toolSpec"].get("name")) for t in tools], mode=mode, text=text, forced=forced
    )
    return None if index is None else tools[index]


def usage(reply: Reply, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inputTokens": reply.prompt,
        "outputTokens": reply.completion,
        "totalTokens": reply.prompt + reply.completion,
    }
    if override:
        out.update(override)
    return out


def converse(reply: Reply, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.tool is not None:
        use_id, name, args = reply.tool
        content.append({"toolUse": {"toolUseId": use_id, "name": name, "input": args}})
    else:
        content.append({"text": reply.text or ""})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reply.stop,
        "usage": usage(reply, override),
        "metrics": {"latencyMs": 42},
    }


def stream_frames(reply: Reply, override: Mapping[str, Any] | None = None) -> list[bytes]:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    if reply.tool is not None:
        use_id, name, args = reply.tool
        frames.append(
            event_frame(
                "contentBlockStart",
                {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": use_id, "name": name}}},
            )
        )
        arguments = orjson.dumps(args).decode()
        size = max(1, min(8, len(arguments) // 2))
        for i in range(0, len(arguments), size):
            frames.append(
                event_frame(
                    "contentBlockDelta",
                    {
                        "contentBlockIndex": 0,
                        "delta": {"toolUse": {"input": arguments[i : i + size]}},
                    },
                )
            )
    else:
        for piece in oa.split_words(reply.text or ""):
            frames.append(
                event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            )
    frames.append(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event_frame("messageStop", {"stopReason": reply.stop}))
    frames.append(
        event_frame("metadata", {"usage": usage(reply, override), "metrics": {"latencyMs": 42}})
    )
    return frames


# -- InvokeModel embeddings and the model list ------------------------------------------


def invoke_embeddings(model: str, body: Mapping[str, Any]) -> dict[str, Any] | str:
    """The InvokeModel answer of an embedding model, or an error message."""
    if "titan-embed" in model:
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            return "Malformed input request: #: required key [inputText] not found"
        dims = body.get("dimensions", 1024 if "v2" in model else 1536)
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            return "Malformed input request: #/dimensions: expected type: Integer"
        return {
            "embedding": oa.embedding_vector(text, min(int(dims), 64)),
            "embeddingsByType": None,
            "inputTextTokenCount": oa.count_words(text),
        }
    if "cohere.embed" in model:
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts:
            return "Malformed input request: #: required key [texts] not found"
        return {
            "embeddings": [oa.embedding_vector(str(t), 16) for t in texts],
            "id": secrets.token_hex(8),
            "response_type": "embeddings_floats",
            "texts": texts,
        }
    return f"The provided model identifier is invalid for InvokeModel: {model}"


def foundation_models(region: str) -> dict[str, Any]:
    return {
        "modelSummaries": [
            {
                "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}",
                "modelId": model_id,
                "modelName": model_id.split(".", 1)[1].split(":")[0],
                "providerName": provider,
                "inputModalities": ["TEXT"],
                "outputModalities": list(outputs),
                "responseStreamingSupported": outputs == ("TEXT",),
                "customizationsSupported": [],
                "inferenceTypesSupported": list(kinds),
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for model_id, provider, outputs, kinds in FOUNDATION_MODELS
        ]
    }
