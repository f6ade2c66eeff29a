"""Bedrock answers -> OpenAI: Converse responses, ConverseStream frames, embeddings, errors.

Usage: Converse's ``inputTokens`` leaves out prompt-cache reads and writes (they are
``cacheReadInputTokens`` / ``cacheWriteInputTokens``); OpenAI's ``prompt_tokens``
counts the whole prompt with the cached part in ``cached_tokens``, so they are added.

Errors: AWS names the error in ``x-amzn-ErrorType`` (``ThrottlingException:http://...``)
and answers a bad or unknown key with 403; those leave as the 401 an OpenAI client
expects, a real permission problem (``AccessDeniedException``) stays 403.

Shapes: optional fields of the wrong type are read leniently (usage counts bounded by
:func:`token_count`, a ``contentBlockIndex`` that is no number taken as 0, a ``start``
or ``delta`` that is no object ignored); a stream frame the translation cannot read
at all ends the stream with a 502 (``unexpected_event``).
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import orjson

from llmrelay.errors import InvalidRequest, UpstreamError, UpstreamInvalidResponse
from llmrelay.providers.aws_eventstream import decode_frame
from llmrelay.providers.base import (
    ChatResult,
    ProviderSpec,
    Usage,
    any_count,
    token_count,
    tokens,
)
from llmrelay.providers.chat_input import check_params, new_completion_id
from llmrelay.providers.chat_output import (
    ChoiceOut,
    ChunkWriter,
    ToolCallOut,
    answer_shape,
    completion,
    embeddings_list,
    upstream_json,
    upstream_object,
)
from llmrelay.providers.stream_state import (
    SHAPE_ERRORS,
    StreamProgress,
    small_index,
    unexpected_event,
)

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
#: AWS answers these with 403, but they mean "who are you?": 401 for OpenAI clients.
_AUTH_ERRORS = frozenset(
    {
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "incompletesignatureexception",
        "missingauthenticationtokenexception",
        "expiredtokenexception",
        "invalidclienttokenidexception",
    }
)
#: Exception frames inside a ConverseStream (lowerCamel names) -> HTTP status.
_STREAM_ERRORS = {
    "internalserverexception": 500,
    "modelstreamerrorexception": 502,
    "validationexception": 400,
    "throttlingexception": 429,
    "serviceunavailableexception": 503,
}
_DOC_NAME = re.compile(r"[^A-Za-z0-9 ()\[\]-]+")


def mime_of_path(path: str) -> str | None:
    return mimetypes.guess_type(path.split("?", 1)[0])[0]


def document_name(filename: Any) -> str:
    """Converse document names allow letters, digits, spaces, ``-()[]`` only."""
    stem = str(filename or "document").rsplit(".", 1)[0]
    return " ".join(_DOC_NAME.sub(" ", stem).split())[:200] or "document"


_COUNTS = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def usage_of(raw: Any) -> Usage | None:
    """Converse ``usage`` (None when it holds no count: see :func:`any_count`)."""
    if not isinstance(raw, dict) or not any_count(*map(raw.get, _COUNTS)):
        return None
    read = token_count(raw.get("cacheReadInputTokens"))
    write = token_count(raw.get("cacheWriteInputTokens"))
    prompt = tokens(raw.get("inputTokens"), read, write)
    completion_tokens = token_count(raw.get("outputTokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        total_tokens=tokens(prompt, completion_tokens),
        cached_tokens=read,
        cache_write_tokens=write,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stop_reason(reason: Any) -> str:
    return STOP_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def chat_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    """A Converse answer as a ``chat.completion``."""
    with answer_shape(spec.name):
        return _chat_result(spec, body, model)


def _chat_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    parsed = upstream_object(spec.name, body)
    output = parsed.get("output")
    if not isinstance(output, dict) or not isinstance(output.get("message"), dict):
        raise UpstreamInvalidResponse(spec.name, "JSON that is not a Converse answer")
    message = output["message"]
    choice = ChoiceOut(index=0)
    texts: list[str] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            choice.tool_calls.append(
                ToolCallOut(
                    str(use.get("toolUseId")),
                    str(use.get("name")),
                    orjson.dumps(use.get("input") or {}).decode(),
                )
            )
    choice.text = "".join(texts) if texts or not choice.tool_calls else None
    choice.finish_reason = stop_reason(parsed.get("stopReason"))
    usage = usage_of(parsed.get("usage"))
    obj = completion(new_completion_id(), model, [choice], usage)
    return ChatResult(orjson.dumps(obj), usage, choice.finish_reason)


class BedrockStream(StreamProgress):
    """ConverseStream frames -> OpenAI chunk events, one frame at a time.

    ``messageStop`` ends the answer; the ``metadata`` frame with usage follows it, so
    the usage chunk and ``[DONE]`` are written when the upstream closes.
    """

    __slots__ = ("_blocks", "_out", "_provider")

    def __init__(self, provider: str, model: str, wants_usage: bool) -> None:
        super().__init__()
        self._provider = provider
        self._out = ChunkWriter(new_completion_id(), model, wants_usage)
        #: contentBlockIndex -> position of the tool call it carries
        self._blocks: dict[int, int] = {}

    def feed(self, event: bytes) -> list[bytes]:
        frame = decode_frame(event, self._provider)
        kind = frame.message_type
        if kind != "event":
            raise self._failure(frame)
        body = upstream_json(self._provider, frame.payload) if frame.payload else {}
        if not isinstance(body, dict):
            return []
        try:
            return self._translate(frame.event_type, body)
        except SHAPE_ERRORS as exc:
            raise unexpected_event(self._provider) from exc

    def _translate(self, name: str, body: dict[str, Any]) -> list[bytes]:
        if name == "messageStart":
            return self._out.start()
        if name == "contentBlockStart":
            start = _object(body.get("start")).get("toolUse")
            if isinstance(start, dict):
                position, events = self._out.tool_start(
                    str(start.get("toolUseId")), str(start.get("name"))
                )
                self._blocks[small_index(body.get("contentBlockIndex"))] = position
                return events
            return []
        if name == "contentBlockDelta":
            delta = _object(body.get("delta"))
            if isinstance(delta.get("text"), str):
                self.content_chars += len(delta["text"])
                return self._out.text(delta["text"])
            use = delta.get("toolUse")
            if isinstance(use, dict) and isinstance(use.get("input"), str):
                found = self._blocks.get(small_index(body.get("contentBlockIndex")))
                if found is None:
                    return []
                self.content_chars += len(use["input"])
                return self._out.tool_arguments(found, use["input"])
            return []
        if name == "messageStop":
            self.finish_reason = stop_reason(body.get("stopReason"))
            self.done = True
            return self._out.finish(self.finish_reason)
        if name == "metadata":
            usage = usage_of(body.get("usage"))
            if usage is not None:
                self.usage = usage
        return []

    def _failure(self, frame: Any) -> UpstreamError:
        payload = upstream_json(self._provider, frame.payload) if frame.payload else {}
        message = (
            payload.get("message") or payload.get("Message") if isinstance(payload, dict) else None
        )
        if frame.message_type == "error":
            code = str(frame.headers.get(":error-code") or "error")
            message = message or frame.headers.get(":error-message")
        else:
            code = frame.event_type
        status = _STREAM_ERRORS.get(code.lower(), 502)
        return UpstreamError(
            str(message or f"upstream {self._provider} failed mid-stream ({code})"),
            status=status,
            code=code,
            provider=self._provider,
        )

    def end(self) -> list[bytes]:
        return self._out.close(self.usage) if self.done else []


# -- embeddings (InvokeModel) ------------------------------------------------------------


def _family(model: str) -> str:
    if "titan-embed" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    raise InvalidRequest(
        f"embeddings on Bedrock support amazon.titan-embed-* and cohere.embed-* models, "
        f"not {model!r}",
        param="model",
    )


def embeddings_body(spec: ProviderSpec, body: dict[str, Any], model: str) -> dict[str, Any]:
    family = _family(model)
    check_params(spec, body, {"input", "dimensions", "encoding_format"})
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            f"provider {spec.name} embeds text only: input must be a string or an array of strings",
            param="input",
        )
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    if family == "titan":
        if len(texts) != 1:
            raise InvalidRequest(
                "Titan embedding models take one input per request; send one string", param="input"
            )
        request: dict[str, Any] = {"inputText": texts[0]}
        if dims is not None:
            request["dimensions"] = dims
            request["normalize"] = True
        return request
    if dims is not None:
        raise InvalidRequest(
            "Cohere embedding models on Bedrock have fixed dimensions", param="dimensions"
        )
    return {"texts": texts, "input_type": "search_document"}


def embeddings_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    """An InvokeModel (Titan, Cohere) embeddings answer as an embeddings list."""
    with answer_shape(spec.name):
        return _embeddings_result(spec, body, model)


def _embeddings_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    parsed = upstream_object(spec.name, body)
    if not isinstance(parsed.get("embedding"), list) and not isinstance(
        parsed.get("embeddings"), list | dict
    ):
        raise UpstreamInvalidResponse(spec.name, "JSON that is not an embeddings answer")
    count = 0
    if isinstance(parsed.get("embedding"), list):  # Titan
        vectors = [parsed["embedding"]]
        count = token_count(parsed.get("inputTextTokenCount"))
    else:  # Cohere: a list of vectors, or {"float": [...]} with embedding_types
        raw = parsed.get("embeddings")
        vectors = raw.get("float") or [] if isinstance(raw, dict) else raw or []
    return embeddings_list(spec.name, vectors, model, count)


# -- model list and errors --------------------------------------------------------------


def parse_models(body: bytes) -> list[str]:
    """Foundation models callable on demand (others need an inference profile id)."""
    parsed = orjson.loads(body)
    names = []
    for item in parsed.get("modelSummaries") or ():
        kinds = item.get("inferenceTypesSupported")
        if kinds is not None and "ON_DEMAND" not in kinds:
            continue
        if item.get("modelId"):
            names.append(str(item["modelId"]))
    return names


def aws_error(provider: str, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    kind = headers.get("x-amzn-errortype", "").split(":", 1)[0]
    message = f"upstream {provider} returned HTTP {status}"
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or message)
        kind = kind or str(parsed.get("__type") or "").rsplit("#", 1)[-1]
    elif body:
        message = f"{message}: {body[:500].decode('utf-8', 'replace').strip()}"
    if kind.lower() in _AUTH_ERRORS:
        status = 401
    passed = {"retry-after": headers["retry-after"]} if "retry-after" in headers else {}
    return UpstreamError(
        message, status=status, code=kind or None, headers=passed, provider=provider
    )
