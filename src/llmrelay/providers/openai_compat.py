"""OpenAI and every OpenAI-compatible host: a pass-through that only reads what it bills.

Responses and stream events are forwarded byte for byte; the adapter parses them only
to learn usage and finish reason. The one edit to a stream: llmrelay always asks for
``stream_options.include_usage`` (to bill exactly) and drops the usage-only chunk when
the client did not ask for it, so the client sees what OpenAI would have sent it.

Forwarding is not trusting: a 2xx body that is not a JSON object of the answer's shape
(``choices`` for chat, ``data`` for embeddings) fails the call with 502 rather than be
relayed as a success, and an ``error`` object inside a stream ends it with llmrelay's
own (scrubbed) error event instead of the upstream's words verbatim.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.errors import UpstreamError, UpstreamInvalidResponse
from llmrelay.providers.base import AdapterBase, ChatResult, ProviderSpec, UpstreamCall, Usage
from llmrelay.providers.stream_state import StreamProgress
from llmrelay.sse import DONE, event_data


def _headers(spec: ProviderSpec) -> dict[str, str]:
    return spec.json_headers(spec.auth_header, spec.auth_prefix)


def _url(spec: ProviderSpec, path: str) -> str:
    return spec.base_url.rstrip("/") + path


def _post(
    spec: ProviderSpec,
    path: str,
    body: dict[str, Any],
    model: str,
    overrides: dict[str, Any] | None = None,
) -> UpstreamCall:
    """The client's body as is, but naming the provider's ``model`` (plus ``overrides``)."""
    out = dict(body)
    out["model"] = model
    out.update(overrides or {})
    return UpstreamCall("POST", _url(spec, path), _headers(spec), orjson.dumps(out))


#: What reading a chunk of an unexpected shape raises (``"choices": [1]``, ``"delta": "x"``,
#: ``"prompt_tokens": "many"``): a hostile or broken upstream's event is relayed as it
#: came and not counted, as an event that is not JSON is, instead of ending the call.
_SHAPE_ERRORS = (AttributeError, TypeError, ValueError, OverflowError)


def _tally(choices: list[Any]) -> tuple[int, str | None]:
    """One chunk's delivered characters (content and tool-call arguments, what a cut
    stream is billed by) and its last finish reason, for both of the relay's paths."""
    chars = 0
    finish = None
    for choice in choices:  # (the same loop is inlined in feed_block: see there)
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                chars += len(content)
            if "tool_calls" in delta:
                chars += _argument_chars(delta["tool_calls"])
        reason = choice.get("finish_reason")
        if reason and type(reason) is str:  # a row's column and a metric label: text only
            finish = reason
    return chars, finish


def _argument_chars(calls: list[Any] | None) -> int:
    chars = 0
    for call in calls or ():
        args = (call.get("function") or {}).get("arguments")
        if args:
            chars += len(args)
    return chars


class OpenAIStreamRelay(StreamProgress):
    """Forwards OpenAI SSE events unchanged while noting usage and the finish reason."""

    __slots__ = ("_provider", "_wants_usage")

    def __init__(self, client_wants_usage: bool, provider: str = "upstream") -> None:
        super().__init__()
        self._wants_usage = client_wants_usage
        self._provider = provider

    def feed(self, event: bytes) -> list[bytes]:
        # One ``data:`` line holding an object (what OpenAI and every imitator sends) is
        # parsed at once; anything else through event_data. A byte scan for the content
        # instead of the parse measured slower (bench/RESULTS.md, "Streams"): each
        # exact check is a search of the whole event, ~0.3 us, and it takes about eight.
        if event.startswith(b"data: {") and event.find(b"\n") == len(event) - 2:
            data = event[6:-2]
        else:
            found = event_data(event)
            if found is None:
                return [event]  # comments / keep-alives pass through
            if found == b"[DONE]":
                self.done = True
                return [event]
            data = found
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [event]
        if type(chunk) is not dict:
            return [event]
        choices = chunk.get("choices")
        if "error" in chunk and not choices:
            raise openai_error(self._provider, 500, data, {})
        try:
            chars, reason = _tally(choices) if choices else (0, None)
            usage = chunk.get("usage")
            counted = Usage.from_openai(usage) if usage else None
        except _SHAPE_ERRORS:
            return [event]  # a chunk of another shape is passed on, not counted
        self.content_chars += chars
        if reason:
            self.finish_reason = reason
        if counted is not None:
            self.usage = counted
            if not choices and not self._wants_usage:
                return []
        return [event]

    def feed_block(self, block: bytes) -> list[bytes] | None:
        """A read's whole events in one piece (:meth:`EventSplitter.feed_block`), read
        with one parse: ``[block]`` unchanged, or None (nothing noted) when they must
        go through :meth:`feed` one by one: an event that is not one ``data:`` line
        holding an object, an error, a usage chunk the client does not see.

        The events' payloads joined with commas are parsed as one JSON array; a JSON
        string cannot hold a raw line break, so ``\\n\\ndata: `` only occurs between
        events and the array has one object per event (checked by count).
        """
        if not block.startswith(b"data: {"):
            return None
        body = block[6:-2]
        done = body.endswith(b"\n\ndata: [DONE]")
        if done:
            body = body[:-14]
        joined = body.replace(b"\n\ndata: ", b",")
        if b"\n" in joined:
            return None
        try:
            chunks = orjson.loads(b"[" + joined + b"]")
        except orjson.JSONDecodeError:
            return None
        if len(chunks) != (len(body) - len(joined)) // 7 + 1:
            return None  # an event that was not one object (each separator is 8 -> 1 byte)
        chars = 0
        finish = None
        usage = None
        last = len(chunks) - 1
        hide = False
        for i, chunk in enumerate(chunks):
            if type(chunk) is not dict:
                return None
            choices = chunk.get("choices")
            if choices:
                # _tally's loop, inlined: it ran once per event (20 calls an answer).
                # Nothing is noted on the gateway until the whole block was read.
                try:
                    for choice in choices:
                        delta = choice.get("delta")
                        if delta:
                            content = delta.get("content")
                            if content:
                                chars += len(content)
                            if "tool_calls" in delta:
                                chars += _argument_chars(delta["tool_calls"])
                        reason = choice.get("finish_reason")
                        if reason and type(reason) is str:
                            finish = reason
                except _SHAPE_ERRORS:
                    return None  # a chunk of another shape: feed() passes it on
            elif "error" in chunk:
                return None
            found = chunk.get("usage")
            if found:
                if not choices and not self._wants_usage:
                    if i != last:
                        return None  # a usage-only chunk to drop mid-read: one by one
                    hide = True  # (where OpenAI sends it: the last before [DONE])
                usage = found
        try:
            counted = Usage.from_openai(usage) if usage else None
        except _SHAPE_ERRORS:
            return None  # nothing noted yet: feed() passes the events on one by one
        self.content_chars += chars
        if finish:
            self.finish_reason = finish
        if counted is not None:
            self.usage = counted
        if done:
            self.done = True
        if hide and counted is not None:  # the read without its last event (the usage
            # chunk), [DONE] kept; a usage chunk with no count in it goes on, as in feed()
            cut = block.rfind(b"\n\ndata: {", 0, len(block) - (16 if done else 2)) + 2
            kept = [block[:cut]] if cut > 1 else []
            return [*kept, DONE] if done else kept
        return [block]

    def end(self) -> list[bytes]:
        return []


class OpenAICompatAdapter(AdapterBase):
    """Adapter for ``type: openai`` and every preset row."""

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        overrides: dict[str, Any] = {}
        if stream and spec.stream_usage:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            overrides["stream_options"] = options
        return _post(spec, "/chat/completions", body, model, overrides)

    def chat_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        parsed = answer_object(spec.name, body, "choices", "a chat completion")
        finish: str | None = None
        choices = parsed["choices"]
        for choice in choices:
            # A choice that is no object (``"choices": [1]``) is no answer any client SDK
            # can read, and nothing the endpoints' translations could carry on: a 502.
            if type(choice) is not dict or type(choice.get("message", {})) is not dict:
                raise UpstreamInvalidResponse(
                    spec.name, "JSON that is not a chat completion (a choice is not an object)"
                )
        if choices:
            reason = choices[0].get("finish_reason")
            finish = reason if type(reason) is str else None
        return ChatResult(
            body=body, usage=Usage.from_openai(parsed.get("usage")), finish_reason=finish
        )

    def chat_stream(
        self, spec: ProviderSpec, model: str, client_wants_usage: bool
    ) -> OpenAIStreamRelay:
        return OpenAIStreamRelay(client_wants_usage or not spec.stream_usage, spec.name)

    def responses_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        """``/v1/responses`` passed through (the ``responses_passthrough`` capability).

        Of the OpenAI-compatible hosts only OpenAI itself (``type: openai``) serves the
        Responses API; for every other one ``/v1/responses`` is translated to chat.
        """
        if spec.type != "openai":
            return super().responses_request(spec, body, model)
        return _post(spec, "/responses", body, model)

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        return _post(spec, "/embeddings", body, model)

    def embeddings_response(self, spec: ProviderSpec, body: bytes, model: str) -> ChatResult:
        parsed = answer_object(spec.name, body, "data", "an embeddings list")
        return ChatResult(body=body, usage=Usage.from_openai(parsed.get("usage")))

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        if not spec.lists_models:
            return None
        headers = _headers(spec)
        headers.pop("content-type", None)
        return UpstreamCall("GET", _url(spec, "/models"), headers)

    def parse_models(self, body: bytes) -> list[str]:
        parsed = orjson.loads(body)
        data = parsed.get("data") if isinstance(parsed, dict) else parsed
        return [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]

    def error(
        self, spec: ProviderSpec, status: int, body: bytes, headers: dict[str, str]
    ) -> UpstreamError:
        return openai_error(spec.name, status, body, headers)


def answer_object(provider: str, body: bytes, key: str, what: str) -> dict[str, Any]:
    """The 2xx body as a JSON object holding the list ``key``, or the 502 saying why not.

    The check is what the pass-through can afford: the body is parsed for usage anyway,
    and looking up one key proves it is an answer and not an HTML error page, a proxy's
    login form or an ``{"error": ...}`` some hosts send with a 200.
    """
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamInvalidResponse(provider, "a body that is not JSON") from None
    if not isinstance(parsed, dict):
        raise UpstreamInvalidResponse(provider, f"JSON that is not {what}")
    if not isinstance(parsed.get(key), list):
        err = parsed.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        if isinstance(message, str) and message:
            raise UpstreamInvalidResponse(provider, f"an error in a 200 answer: {message[:300]}")
        raise UpstreamInvalidResponse(provider, f"JSON that is not {what} (no {key!r} list)")
    return parsed


def openai_error(provider: str, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """Map an OpenAI-shaped error body to an :class:`UpstreamError` with the same fields."""
    message = f"upstream {provider} returned HTTP {status}"
    error_type: str | None = None
    code: str | int | None = None
    param: str | None = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            error_type = err.get("type") if isinstance(err.get("type"), str) else None
            found = err.get("code")
            # Only a string or a number is a code (it is hashed, logged and sent on).
            code = found if isinstance(found, str | int) and not isinstance(found, bool) else None
            param = err.get("param") if isinstance(err.get("param"), str) else None
        elif isinstance(err, str):
            message = err
    elif body:
        text = body[:500].decode("utf-8", "replace").strip()
        if text:
            message = f"{message}: {text}"
    passed: dict[str, str] = {}
    for name in ("retry-after", "retry-after-ms"):
        if name in headers:
            passed[name] = headers[name]
    return UpstreamError(
        message,
        status=status,
        error_type=error_type,
        code=code,
        param=param,
        headers=passed,
        provider=provider,
    )
