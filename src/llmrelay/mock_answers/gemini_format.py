"""Pure builders for Google's Gemini wire format (Gemini API and Vertex AI alike).

``generateContent`` JSON, ``streamGenerateContent?alt=sse`` events (``data: {...}``
framed with ``\\r\\n\\r\\n`` as Google frames them), ``embedContent`` /
``batchEmbedContents`` / Vertex ``predict`` embeddings, model lists and the
``{"error": {code, message, status, details}}`` error shape, copied from the shapes
Google's API reference documents. No I/O here.

The reply follows the OpenAI mock's rules (:mod:`.tool_choice`): echo the last user
text; call a declared function when the text contains the word "tool" (always with
function calling mode ``ANY``, never with ``NONE``), its arguments an instance of its
schema (:mod:`.json_instance`). After a function response the reply reports what the
function returned, so a tool loop ends. A ``responseSchema`` / ``responseJsonSchema``
gets JSON text of that schema.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import openai_format as oa
from .json_instance import instance
from .tool_choice import Mode, pick_tool

DEFAULT_MODELS: tuple[str, ...] = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.0-flash",
    "text-embedding-004",
)
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 "
        "access token, login cookie or other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


def error_body(
    status: int,
    message: str | None = None,
    *,
    google_status: str | None = None,
    retry_seconds: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    default_status, default_message = _STATUS.get(
        status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", "Request failed.")
    )
    error: dict[str, Any] = {
        "code": status,
        "message": message or default_message,
        "status": google_status or default_status,
    }
    details: list[dict[str, Any]] = []
    if reason:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if retry_seconds:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_seconds}s"}
        )
    if details:
        error["details"] = details
    return {"error": error}


def new_response_id() -> str:
    return secrets.token_urlsafe(16).replace("-", "").replace("_", "")[:22]


# -- reading requests ----------------------------------------------------------------


def request_error(body: object) -> str | None:
    if not isinstance(body, Mapping):
        return "Invalid JSON payload received. Expected an object."
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if not isinstance(content, Mapping) or not content.get("parts"):
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        if content.get("role") not in ("user", "model", "function", None):
            return f"Please use a valid role: user, model. (contents[{i}].role)"
    return None


def _texts(parts: Any) -> list[str]:
    return [
        p["text"] for p in parts or () if isinstance(p, Mapping) and isinstance(p.get("text"), str)
    ]


def prompt_tokens(body: Mapping[str, Any]) -> int:
    words = sum(
        oa.count_words(t) for c in body.get("contents") or () for t in _texts(c.get("parts"))
    )
    system = body.get("systemInstruction") or {}
    return words + sum(oa.count_words(t) for t in _texts(system.get("parts")))


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    call: tuple[str, dict[str, Any]] | None
    finish: str
    prompt: int
    completion: int


def mock_arguments(schema: Any, text: str) -> dict[str, Any]:
    """Arguments for a declared function: an instance of its schema built from the text
    (:mod:`.json_instance`; Gemini's capitalised OpenAPI types read the same)."""
    value = instance(schema, text) if isinstance(schema, Mapping) else {}
    return value if isinstance(value, dict) else {}


def plan_reply(body: Mapping[str, Any], reply: str | None = None) -> Reply:
    contents = body.get("contents") or []
    last = contents[-1] if contents else {}
    parts = last.get("parts") or []
    prompt = prompt_tokens(body)
    responses = [
        p["functionResponse"]
        for p in parts
        if isinstance(p, Mapping) and isinstance(p.get("functionResponse"), Mapping)
    ]
    text = " ".join(_texts(parts))
    function = _function_to_call(body, text)
    if reply is None and function is not None and not responses:
        args = mock_arguments(function.get("parameters"), text)
        completion = oa.count_words(str(function["name"])) + len(args)
        return Reply(None, (str(function["name"]), args), "STOP", prompt, completion)
    if reply is None and responses:
        reply = "; ".join(
            f"{r.get('name')} returned {orjson.dumps(r.get('response')).decode()}"
            for r in responses
        )
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if reply is None and isinstance(schema, Mapping):  # JSON mode with a schema
        reply = orjson.dumps(instance(schema, text)).decode()
        return Reply(reply, None, "STOP", prompt, oa.count_words(reply))
    content = text if reply is None else reply
    limit = config.get("maxOutputTokens")
    words = oa.split_words(content)
    if isinstance(limit, int) and len(words) > limit:
        return Reply("".join(words[:limit]), None, "MAX_TOKENS", prompt, limit)
    return Reply(content, None, "STOP", prompt, oa.count_words(content))


def _function_to_call(body: Mapping[str, Any], text: str) -> Mapping[str, Any] | None:
    declarations = [
        d for tool in body.get("tools") or () for d in (tool.get("functionDeclarations") or ())
    ]
    if not declarations:
        return None
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    allowed = config.get("allowedFunctionNames")
    if allowed:
        declarations = [d for d in declarations if d.get("name") in allowed] or declarations
    choice: Mode = "none" if mode == "NONE" else "required" if mode == "ANY" else "auto"
    index = pick_tool([str(d.get("name")) for d in declarations], mode=choice, text=text)
    return None if index is None else declarations[index]


# -- answers -------------------------------------------------------------------------


def usage_metadata(reply: Reply, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": reply.prompt,
        "candidatesTokenCount": reply.completion,
        "totalTokenCount": reply.prompt + reply.completion,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt}],
    }
    if override:
        usage.update(override)
    return usage


def _parts(reply: Reply, text: str | None) -> list[dict[str, Any]]:
    if reply.call is not None:
        return [{"functionCall": {"name": reply.call[0], "args": reply.call[1]}}]
    return [{"text": text or ""}]


def generate_content(
    reply: Reply,
    model: str,
    response_id: str,
    candidates: int = 1,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": _parts(reply, reply.text), "role": "model"},
                "finishReason": reply.finish,
                "avgLogprobs": -0.0421,
                "index": i,
            }
            for i in range(candidates)
        ],
        "usageMetadata": usage_metadata(reply, usage),
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_chunks(
    reply: Reply, model: str, response_id: str, usage: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One chunk per word; the last one carries ``finishReason`` and the full usage."""
    pieces: list[str | None] = (
        [None] if reply.call is not None else list(oa.split_words(reply.text or "")) or [""]
    )
    chunks = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        candidate: dict[str, Any] = {
            "content": {"parts": _parts(reply, piece), "role": "model"},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = reply.finish
        chunks.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage_metadata(reply, usage)
                if last
                else {"promptTokenCount": reply.prompt, "totalTokenCount": reply.prompt},
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    return chunks


def encode_sse(obj: object) -> bytes:
    """Google frames SSE events with CRLF line ends."""
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"


# -- embeddings and model lists ---------------------------------------------------------


def embed_values(text: str, dims: Any) -> list[float]:
    size = dims if isinstance(dims, int) and 0 < dims <= oa.MAX_EMBEDDING_DIMS else 8
    return oa.embedding_vector(text, size)


def content_text(content: Any) -> str:
    return " ".join(_texts((content or {}).get("parts")))


def models_list(models: tuple[str, ...]) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": (
                    ["embedContent"] if "embedding" in m else ["generateContent", "countTokens"]
                ),
            }
            for m in models
        ]
        + [{"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]}]
    }


def publisher_models(models: tuple[str, ...]) -> dict[str, Any]:
    return {
        "publisherModels": [
            {
                "name": f"publishers/google/models/{m}",
                "versionId": "001",
                "openSourceCategory": "PROPRIETARY",
                "launchStage": "GA",
            }
            for m in models
        ]
    }
