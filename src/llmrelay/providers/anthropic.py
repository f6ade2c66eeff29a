"""The Anthropic adapter: OpenAI chat calls served by Anthropic's Messages API.

Pure translation (see :mod:`.anthropic_request` for the request,
:mod:`.anthropic_stream` for streams, :mod:`.anthropic_convert` for the mappings shared
with the ``/v1/messages`` endpoint); the shared transport does the I/O. Calls go to
``{base_url}/messages`` with ``x-api-key`` and ``anthropic-version`` headers. The
``base_url`` may be given with or without ``/v1`` (the ``anthropic`` SDK's
``ANTHROPIC_BASE_URL`` convention has none).

For ``/v1/messages`` clients the adapter also offers a pass-through
(:meth:`AnthropicAdapter.messages_request`): the client's Anthropic body goes upstream
as is, and the answer comes back untouched, with no double translation.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmrelay.errors import UpstreamError, UpstreamInvalidResponse
from llmrelay.providers.anthropic_convert import (
    ANTHROPIC_VERSION,
    JSON_TOOL,
    finish_reason,
    input_to_arguments,
    openai_usage,
    upstream_error,
)
from llmrelay.providers.anthropic_request import to_anthropic
from llmrelay.providers.anthropic_stream import AnthropicStreamTranslator, usage_of
from llmrelay.providers.base import AdapterBase, ChatResult, ProviderSpec, UpstreamCall
from llmrelay.providers.chat_output import answer_shape


def _url(spec: ProviderSpec, path: str) -> str:
    base = spec.base_url.rstrip("/")
    return base + (path if base.endswith("/v1") else "/v1" + path)


def _headers(spec: ProviderSpec, *, json_body: bool = True) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if json_body:
        headers["content-type"] = "application/json"
    if spec.api_key:
        headers["x-api-key"] = spec.api_key
    headers.update(spec.headers)  # e.g. anthropic-beta, or a pinned anthropic-version
    return headers


def to_openai_completion(message: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    """An Anthropic ``message`` object as an OpenAI ``chat.completion`` object.

    ``content`` that is not a list of blocks is not Anthropic's answer (a 502, see
    :func:`_parse`); a block of a kind or shape OpenAI cannot carry is left out, and
    usage of any shape is read as what is known of it.
    """
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(input_to_arguments(block.get("input")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": input_to_arguments(block.get("input")),
                    },
                }
            )
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
    stop = message.get("stop_reason")
    finish = finish_reason(stop)
    if stop == "tool_use" and not calls:
        finish = "stop"  # only the JSON-mode tool was called: that is the answer
    content: str | None = "".join(texts)
    if not texts and (calls or stop == "refusal"):
        content = None  # as OpenAI: no content beside tool calls or when filtered
    out_message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if thinking:
        out_message["reasoning_content"] = "".join(thinking)
    if calls:
        out_message["tool_calls"] = calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [
            {"index": 0, "message": out_message, "logprobs": None, "finish_reason": finish}
        ],
        "usage": openai_usage(message.get("usage")),
    }


def _parse(body: bytes, provider: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamInvalidResponse(provider, "a body that is not JSON") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "message":
        raise UpstreamInvalidResponse(provider, "JSON that is not a message object")
    content = parsed.get("content")
    if content is not None and not isinstance(content, list):
        raise UpstreamInvalidResponse(provider, "a message whose content is not a list")
    return parsed


class AnthropicAdapter(AdapterBase):
    """Adapter for ``type: anthropic``."""

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        payload = to_anthropic(spec, body, model, stream)
        return UpstreamCall("POST", _url(spec, "/messages"), _headers(spec), orjson.dumps(payload))

    def chat_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        message = _parse(body, spec.name)
        with answer_shape(spec.name):
            completion = to_openai_completion(message)
            return ChatResult(
                body=orjson.dumps(completion),
                usage=usage_of(message.get("usage")),
                finish_reason=completion["choices"][0]["finish_reason"],
            )

    def chat_stream(
        self, spec: ProviderSpec, model: str, client_wants_usage: bool
    ) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(spec.name, model, client_wants_usage)

    # -- pass-through for /v1/messages ---------------------------------------------------
    def messages_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        stream: bool,
        beta: str | None = None,
    ) -> UpstreamCall:
        """The client's own Messages body, for this target's model.

        ``beta`` is the client's ``anthropic-beta`` header: beta features (interleaved
        thinking, larger contexts ...) are switched on per request, so it goes along,
        joined with any the provider configures.
        """
        payload = dict(body)
        payload["model"] = model
        headers = _headers(spec)
        if beta:
            configured = headers.get("anthropic-beta")
            headers["anthropic-beta"] = f"{configured},{beta}" if configured else beta
        return UpstreamCall("POST", _url(spec, "/messages"), headers, orjson.dumps(payload))

    def count_tokens_request(
        self,
        spec: ProviderSpec,
        body: dict[str, Any],
        model: str,
        beta: str | None = None,
    ) -> UpstreamCall:
        """``/v1/messages/count_tokens`` as is: only Anthropic knows Claude's tokenizer."""
        messages = self.messages_request(spec, body, model, False, beta)
        return UpstreamCall(
            "POST", _url(spec, "/messages/count_tokens"), messages.headers, messages.body
        )

    def messages_response(self, spec: ProviderSpec, body: bytes) -> ChatResult:
        message = _parse(body, spec.name)
        return ChatResult(
            body=body,
            usage=usage_of(message.get("usage")),
            finish_reason=finish_reason(message.get("stop_reason")),
        )

    def messages_stream(self, spec: ProviderSpec, model: str) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(spec.name, model, False, passthrough=True)

    # -- the rest of the protocol --------------------------------------------------------
    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        if not spec.lists_models:
            return None
        return UpstreamCall(
            "GET", _url(spec, "/models?limit=1000"), _headers(spec, json_body=False)
        )

    def parse_models(self, body: bytes) -> list[str]:
        parsed = orjson.loads(body)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        return [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]

    def error(
        self, spec: ProviderSpec, status: int, body: bytes, headers: dict[str, str]
    ) -> UpstreamError:
        try:
            payload = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            payload = None
        error = upstream_error(spec.name, status, payload, headers)
        if payload is None and body:
            text = body[:500].decode("utf-8", "replace").strip()
            if text:
                error.message = f"{error.message}: {text}"
        return error
