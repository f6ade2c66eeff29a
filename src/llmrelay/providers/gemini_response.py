"""Gemini / Vertex answers -> OpenAI: responses, the SSE stream, embeddings, errors.

Quirks handled here, each from Google's documentation:

- A function call finishes with ``finishReason: STOP``; OpenAI says ``tool_calls``.
- ``candidatesTokenCount`` excludes thinking tokens (``thoughtsTokenCount``) while
  OpenAI's ``completion_tokens`` includes reasoning, so they are added up.
- Thinking models attach a ``thoughtSignature`` to function calls and refuse the next
  turn unless it comes back. OpenAI clients only echo the tool call ``id``, so the
  signature rides inside the id (``call_x~sig~<signature>``) and is restored on the way
  back (see :func:`signature_of`).
- Streams have no terminator: a chunk with ``finishReason`` ends the answer cleanly.
- A rate limit carries its wait in ``details[].retryDelay`` (``"30s"``), passed on as
  ``retry-after``.

An answer of an unexpected shape is read leniently where a field is optional (usage
counts bounded by :func:`token_count`, an ``index`` that is no number taken as the
position, parts that are not objects skipped); a stream event the translation cannot
read at all ends the stream with a 502 (``unexpected_event``).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from llmrelay.errors import InvalidRequest, UpstreamError, UpstreamInvalidResponse
from llmrelay.providers.base import (
    ChatResult,
    ProviderSpec,
    Usage,
    any_count,
    token_count,
    tokens,
)
from llmrelay.providers.chat_input import check_params, new_call_id, new_completion_id
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
from llmrelay.sse import event_data

_SIG = "~sig~"
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def signature_of(call_id: str) -> str | None:
    """The thought signature carried in a tool call id made by :func:`_call_id`."""
    _, sep, signature = call_id.partition(_SIG)
    return signature if sep and signature else None


def _call_id(call: dict[str, Any], part: dict[str, Any]) -> str:
    base = str(call.get("id") or new_call_id())
    signature = part.get("thoughtSignature")
    return f"{base}{_SIG}{signature}" if isinstance(signature, str) and signature else base


def finish_reason(reason: Any, called_tools: bool) -> str:
    if called_tools and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


_COUNTS = (
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "thoughtsTokenCount",
    "candidatesTokenCount",
    "totalTokenCount",
    "cachedContentTokenCount",
)


def usage_of(meta: Any) -> Usage | None:
    """``usageMetadata`` as usage (None when it holds no count: see :func:`any_count`)."""
    if not isinstance(meta, dict) or not any_count(*map(meta.get, _COUNTS)):
        return None
    prompt = tokens(meta.get("promptTokenCount"), meta.get("toolUsePromptTokenCount"))
    thoughts = token_count(meta.get("thoughtsTokenCount"))
    completion_tokens = tokens(meta.get("candidatesTokenCount"), thoughts)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        total_tokens=token_count(meta.get("totalTokenCount")) or tokens(prompt, completion_tokens),
        cached_tokens=token_count(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _parts(candidate: dict[str, Any]) -> Any:
    """A candidate's ``content.parts`` (nothing when either is not what Gemini sends)."""
    content = candidate.get("content")
    return (content.get("parts") or ()) if isinstance(content, dict) else ()


def _choice(candidate: dict[str, Any], position: int) -> ChoiceOut:
    choice = ChoiceOut(index=small_index(candidate.get("index"), position))
    texts: list[str] = []
    for part in _parts(candidate):
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            choice.tool_calls.append(
                ToolCallOut(
                    _call_id(call, part),
                    str(call.get("name")),
                    orjson.dumps(call.get("args") or {}).decode(),
                )
            )
    choice.text = "".join(texts) if texts or not choice.tool_calls else None
    choice.finish_reason = finish_reason(candidate.get("finishReason"), bool(choice.tool_calls))
    return choice


def chat_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    """A ``generateContent`` answer as a ``chat.completion``."""
    with answer_shape(spec.name):
        return _chat_result(spec, body, model)


def _chat_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    parsed = upstream_object(spec.name, body)
    if "candidates" not in parsed and "promptFeedback" not in parsed:
        raise UpstreamInvalidResponse(spec.name, "JSON that is not a generateContent answer")
    candidates = [c for c in parsed.get("candidates") or () if isinstance(c, dict)]
    choices = [_choice(c, i) for i, c in enumerate(candidates)]
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices = [ChoiceOut(index=0, text=None, finish_reason="content_filter")]
    usage = usage_of(parsed.get("usageMetadata"))
    response_id = parsed.get("responseId")
    completion_id = f"chatcmpl-{response_id}" if response_id else new_completion_id()
    obj = completion(completion_id, str(parsed.get("modelVersion") or model), choices, usage)
    return ChatResult(orjson.dumps(obj), usage, choices[0].finish_reason)


class GeminiStream(StreamProgress):
    """``streamGenerateContent?alt=sse`` events -> OpenAI chunk events, as they arrive."""

    __slots__ = ("_called", "_out", "_provider")

    def __init__(self, provider: str, model: str, wants_usage: bool) -> None:
        super().__init__()
        self._provider = provider
        self._out = ChunkWriter(new_completion_id(), model, wants_usage)
        self._called: set[int] = set()

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None:
            return []
        chunk = upstream_json(self._provider, data)
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            status = chunk["error"].get("code")
            known = type(status) is int and 400 <= status <= 599
            raise google_error(self._provider, status if known else 500, data, {})
        try:
            return self._translate(chunk)
        except SHAPE_ERRORS as exc:
            raise unexpected_event(self._provider) from exc

    def _translate(self, chunk: dict[str, Any]) -> list[bytes]:
        usage = usage_of(chunk.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        out: list[bytes] = []
        candidates = [c for c in chunk.get("candidates") or () if isinstance(c, dict)]
        for position, candidate in enumerate(candidates):
            index = small_index(candidate.get("index"), position)
            out.extend(self._out.start(index))
            for part in _parts(candidate):
                out.extend(self._part(part, index))
            reason = candidate.get("finishReason")
            if reason:
                self.finish_reason = finish_reason(reason, index in self._called)
                out.extend(self._out.finish(self.finish_reason, index))
                self.done = True
        feedback = chunk.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            self.finish_reason = "content_filter"
            out.extend(self._out.finish("content_filter"))
            self.done = True
        return out

    def _part(self, part: Any, index: int) -> list[bytes]:
        if not isinstance(part, dict) or part.get("thought"):
            return []
        text = part.get("text")
        if isinstance(text, str):
            self.content_chars += len(text)
            return self._out.text(text, index)
        call = part.get("functionCall")
        if isinstance(call, dict):
            # Gemini sends each call whole: one delta carries name and all arguments.
            arguments = orjson.dumps(call.get("args") or {}).decode()
            self.content_chars += len(arguments)
            self._called.add(index)
            _, events = self._out.tool_start(
                _call_id(call, part), str(call.get("name")), arguments, index
            )
            return events
        return []

    def end(self) -> list[bytes]:
        return self._out.close(self.usage) if self.done else []


# -- embeddings ------------------------------------------------------------------------


def embedding_inputs(spec: ProviderSpec, body: dict[str, Any]) -> tuple[list[str], int | None]:
    """The texts to embed and the requested dimensions (Google embeds text only)."""
    check_params(spec, body, {"input", "dimensions", "encoding_format"})
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            f"provider {spec.name} embeds text only: input must be a string or an array of strings",
            param="input",
        )
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    return texts, dims


def embeddings_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    """An ``embedContent`` / ``batchEmbedContents`` / ``predict`` answer as an embeddings list."""
    with answer_shape(spec.name):
        return _embeddings_result(spec, body, model)


def _embeddings_result(spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
    parsed = upstream_object(spec.name, body)
    if not {"embedding", "embeddings", "predictions"} & parsed.keys():
        raise UpstreamInvalidResponse(spec.name, "JSON that is not an embeddings answer")
    vectors: list[Any] = []
    count = 0
    if isinstance(parsed.get("embedding"), dict):  # embedContent
        vectors = [parsed["embedding"].get("values") or []]
    elif isinstance(parsed.get("embeddings"), list):  # batchEmbedContents
        vectors = [e.get("values") or [] for e in parsed["embeddings"] if isinstance(e, dict)]
    elif isinstance(parsed.get("predictions"), list):  # Vertex predict
        for prediction in parsed["predictions"]:
            found = prediction.get("embeddings") if isinstance(prediction, dict) else None
            embedding = found if isinstance(found, dict) else {}
            vectors.append(embedding.get("values") or [])
            statistics = embedding.get("statistics")
            if isinstance(statistics, dict):
                count = tokens(count, statistics.get("token_count"))
    # The Gemini API reports no token counts for embeddings; Vertex does.
    return embeddings_list(spec.name, vectors, model, count)


# -- model lists and errors ------------------------------------------------------------


def parse_models(body: bytes) -> list[str]:
    """Gemini ``models`` (filtered to ones that generate or embed) or Vertex
    ``publisherModels``; names lose their ``models/`` / ``publishers/...`` prefix."""
    parsed = orjson.loads(body)
    names: list[str] = []
    for item in parsed.get("models") or ():
        methods = item.get("supportedGenerationMethods")
        if methods is not None and not {"generateContent", "embedContent"} & set(methods):
            continue
        names.append(str(item.get("name", "")).removeprefix("models/"))
    for item in parsed.get("publisherModels") or ():
        names.append(str(item.get("name", "")).rsplit("/", 1)[-1])
    return [n for n in names if n]


def _retry_seconds(details: Any) -> str | None:
    for detail in details or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(min(max(1, math.ceil(float(delay[:-1]))), 86_400))
            except (ValueError, OverflowError):  # not a number, or "infs"
                return None
    return None


def google_error(provider: str, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """``{"error": {code, message, status, details}}`` -> the OpenAI error shape.

    An invalid API key is a 400 ``API_KEY_INVALID`` at Google; it leaves as the 401 an
    OpenAI client expects for a bad key.
    """
    message = f"upstream {provider} returned HTTP {status}"
    google_status: str | None = None
    details: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        google_status = err.get("status") if isinstance(err.get("status"), str) else None
        details = err.get("details") if isinstance(err.get("details"), list) else None
    elif body and not isinstance(parsed, dict):
        text = body[:500].decode("utf-8", "replace").strip()
        message = f"{message}: {text}" if text else message
    found = (d.get("reason") for d in details or () if isinstance(d, dict))
    reasons = {r for r in found if isinstance(r, str)}  # hashed: strings only
    code = google_status
    if "API_KEY_INVALID" in reasons or google_status == "UNAUTHENTICATED":
        status = 401
        code = "API_KEY_INVALID" if "API_KEY_INVALID" in reasons else google_status
    passed: dict[str, str] = {}
    retry = headers.get("retry-after") or _retry_seconds(details)
    if retry:
        passed["retry-after"] = retry
    return UpstreamError(message, status=status, code=code, headers=passed, provider=provider)
