"""The ``guardrails`` plug-in: PII checks on what the model is sent and what it answers.

* before: every text of the client's body (:mod:`.walk`) through the input guardrails;
  a ``deny`` refuses the call (400 in the endpoint's shape, naming the entity types,
  never the values) before any upstream call or charge; ``redact`` rewrites
  ``call.body``, which every codec builds each upstream request from, so the model
  only ever sees placeholders, and the logged request body is the redacted one.
* after: the answer's texts through the output guardrails, then (``restore``) the
  call's placeholders back to the client's originals.
* stream: the same per text delta (each choice's content, each tool call's
  arguments), holding back only the longest entity matched (output guardrails) and
  the longest placeholder (restore); the held text goes out with the choice's finish
  chunk or at the end.

Findings (types, counts, positions) go to the ``x-llmrelay-guardrails`` header, the
interaction row and the metrics; the values never leave the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.errors import InternalError, InvalidRequest
from llmrelay.guardrails.config import GuardrailConfigError, GuardrailsConfig, parse_guardrails
from llmrelay.guardrails.passthrough import AnthropicGuard, ResponsesGuard, SyncStep
from llmrelay.guardrails.safety import SafetyStream
from llmrelay.guardrails.safety import check as safety_check
from llmrelay.guardrails.scan import CountFinding, GuardState, TextGuard, scan_text
from llmrelay.guardrails.walk import Rewrite, rewrite_body
from llmrelay.plugins.chain import Plugin, StreamStep
from llmrelay.providers.base import ChatResult
from llmrelay.sse import DONE, encode_json, event_data

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.guardrails.moderation import Moderation
    from llmrelay.guardrails.ner import NameModel

HEADER = "x-llmrelay-guardrails"
TIME_HEADER = "x-llmrelay-guardrails-ms"


class Guardrails(Plugin):
    name = "guardrails"

    def __init__(
        self,
        config: GuardrailsConfig,
        moderation: Moderation | None = None,
        count: CountFinding | None = None,
        ner: NameModel | None = None,
    ) -> None:
        self.config = config
        self.moderation = moderation
        self.count = count
        #: The process's NER model, used only when a guardrail has ``names: ner``.
        self.ner = ner if config.uses_ner else None

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        moderation: Moderation | None = None,
        count: CountFinding | None = None,
        ner: NameModel | None = None,
    ) -> Guardrails:
        try:
            return cls(parse_guardrails(options), moderation, count, ner)
        except GuardrailConfigError as exc:
            raise InvalidRequest(
                f"plug-in guardrails: {exc}", param=exc.path, code="invalid_guardrails"
            ) from None

    def _state(self, call: Call) -> GuardState:
        state: GuardState | None = call.guardrails
        if state is None:
            state = call.guardrails = GuardState(self.config, self.count, ner=self.ner)
        return state

    async def before(self, call: Call) -> None:
        state = self._state(call)
        try:
            await self._before(call, state)
        finally:
            _headers(call, state)  # a denial's answer says what was found, too
        return None

    async def _before(self, call: Call, state: GuardState) -> None:
        body = call.body
        if body is None:
            return
        if self.config.input:

            def redact(text: str) -> str:
                return scan_text("input", self.config.input, text, state)

            await self._rewrite(body, redact)
            if state.counts:
                # The logged request is what the model was sent, never the original.
                call.raw_body = orjson.dumps(body)
        if self.config.input_safety:
            await safety_check(
                "input", self.config.input_safety, _texts(body), state, self.moderation
            )

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        state = self._state(call)
        try:
            return await self._after(call, answer, state)
        finally:
            _headers(call, state)

    async def _after(self, call: Call, answer: ChatResult, state: GuardState) -> ChatResult:
        outputs = self.config.output
        restoring = self.config.restores and bool(state.vault.by_placeholder)
        if restoring:
            _unredact_request(call, state)
        if (not outputs and not restoring and not self.config.output_safety) or (
            call.route == "/v1/embeddings"
        ):
            return answer  # vectors hold no text to check
        try:
            body = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise InternalError(
                "guardrails: the answer is not JSON, so it could not be "
                "checked (guardrails fail closed)",
                code="guardrail_failed",
            ) from None
        if not isinstance(body, dict):
            return answer
        if self.config.output_safety:
            await safety_check(
                "output", self.config.output_safety, _texts(body), state, self.moderation
            )
        if outputs:
            await self._rewrite(body, lambda text: scan_text("output", outputs, text, state))
        checked = orjson.dumps(body)
        if restoring:
            state.response_log = checked
            rewrite_body(body, state.vault.restore)
            answer.body = orjson.dumps(body)
        else:
            answer.body = checked
        return answer

    async def _rewrite(self, body: dict[str, Any], fn: Rewrite) -> None:
        """Every text of ``body`` through ``fn``: on the NER's thread when a guardrail
        uses the model (seconds for a long text; the event loop goes on meanwhile)."""
        if self.ner is None:
            rewrite_body(body, fn)
        else:
            await self.ner.run(rewrite_body, body, fn)

    def stream(self, call: Call) -> StreamStep | None:
        state = self._state(call)
        restoring = self.config.restores and bool(state.vault.by_placeholder)
        if restoring:
            _unredact_request(call, state)
        text: StreamStep | None = None
        if self.config.output or restoring:
            sync: SyncStep
            if call.passthrough:
                guard = AnthropicGuard if call.route == "/v1/messages" else ResponsesGuard
                sync = guard(self.config, state, restoring)
            else:
                sync = _ChunkGuard(self.config, state, restoring)
            text = sync if self.ner is None else OffLoop(sync, self.ner)
        if not self.config.output_safety:
            return text
        safety = SafetyStream(self.config.output_safety, state, self.moderation)
        return safety if text is None else _Both(safety, text)


def _unredact_request(call: Call, state: GuardState) -> None:
    """The upstream has answered (no attempt is left): the request the codec echoes in
    its answer (a Responses ``instructions``, ...) gets the client's originals back. The
    logged request stays the redacted ``call.raw_body``."""
    if call.body is not None:
        rewrite_body(call.body, state.vault.restore)


def _texts(body: dict[str, Any]) -> list[str]:
    """Every text of a body (the fields :mod:`.walk` rewrites), in order."""
    texts: list[str] = []

    def keep(text: str) -> str:
        texts.append(text)
        return text

    rewrite_body(body, keep)
    return texts


class _Both(StreamStep):
    """Content safety on the model's text, then the PII checks and the restore."""

    __slots__ = ("first", "second")

    def __init__(self, first: StreamStep, second: StreamStep) -> None:
        self.first, self.second = first, second

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return await self.second.feed(call, await self.first.feed(call, events))

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        return await self.second.end(call, await self.first.end(call, events))


class OffLoop(StreamStep):
    """A stream's PII checks on the NER's thread: each upstream read's events are
    checked there (a hop of ~0.1 ms), so a model call never holds the event loop."""

    __slots__ = ("inner", "ner")

    def __init__(self, inner: SyncStep, ner: NameModel) -> None:
        self.inner, self.ner = inner, ner

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return await self.ner.run(self.inner.events, events)

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        return await self.ner.run(self.inner.finish, events)


def _headers(call: Call, state: GuardState) -> None:
    if state.counts:
        call.extra_headers[HEADER] = state.header()
    call.extra_headers[TIME_HEADER] = f"{state.seconds * 1000:.3f}"
    call.overhead_parts["guardrails"] = state.seconds * 1000


#: (choice index, "content") or (choice index, "tool", tool call index).
_Key = tuple[Any, ...]


def _text_of(value: object) -> str:
    return value if isinstance(value, str) else ""


def _small_int(value: object) -> int:
    """A chunk's index as a key: an int in range, else 0 (a list would not hash, and a
    huge number would name a text of its own for every chunk)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024:
        return value
    return 0


class _ChunkGuard(SyncStep):
    """Output guardrails and restore over internal ``chat.completion.chunk`` events."""

    __slots__ = ("config", "last", "restoring", "state", "texts")

    def __init__(self, config: GuardrailsConfig, state: GuardState, restoring: bool) -> None:
        self.config, self.state, self.restoring = config, state, restoring
        self.texts: dict[_Key, TextGuard] = {}
        #: The last chunk seen, the template of the one that carries the held text.
        self.last: dict[str, Any] | None = None

    def _text(self, key: _Key) -> TextGuard:
        text = self.texts.get(key)
        if text is None:
            text = self.texts[key] = TextGuard(self.config, self.state, self.restoring)
        return text

    def events(self, events: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            data = event_data(event)
            if data is None or data == b"[DONE]" or b'"choices"' not in data:
                if data == b"[DONE]":
                    out.extend(self._flush_all())
                out.append(event)
                continue
            # A chunk of another shape (a hostile or broken upstream) is not passed on
            # unscanned: an event that is not JSON, not an object or whose choices are
            # not a list is left out, and so is a choice that is not an object. No SDK
            # could read them, and their text would pass the guardrail unseen.
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            choices = obj.get("choices") if isinstance(obj, dict) else None
            if choices is not None and not isinstance(choices, list):
                continue
            if not isinstance(obj, dict):
                continue
            if choices:
                obj["choices"] = choices = [c for c in choices if isinstance(c, dict)]
                for choice in choices:
                    self._choice(choice)
            self.last = obj
            out.append(encode_json(obj))
        return out

    def _choice(self, choice: dict[str, Any]) -> None:
        index = _small_int(choice.get("index", 0))
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        content = delta.get("content")
        if isinstance(content, str):
            delta["content"] = self._text((index, "content")).feed(content)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                key = (index, "tool", _small_int(call.get("index", 0)))
                function["arguments"] = self._text(key).feed(function["arguments"])
        if choice.get("finish_reason"):
            self._flush_into(index, delta)

    def _flush_into(self, index: Any, delta: dict[str, Any]) -> None:
        """Release what the choice held into its finish chunk, before it closes."""
        for key in [k for k in self.texts if k[0] == index]:
            held = self.texts.pop(key).flush()
            if not held:
                continue
            if key[1] == "content":
                delta["content"] = _text_of(delta.get("content")) + held
                continue
            calls = delta.get("tool_calls")
            if not isinstance(calls, list):
                calls = delta["tool_calls"] = []
            for call in calls:
                if isinstance(call, dict) and _small_int(call.get("index", 0)) == key[2]:
                    function = call.get("function")
                    if not isinstance(function, dict):
                        function = call["function"] = {}
                    function["arguments"] = _text_of(function.get("arguments")) + held
                    break
            else:
                calls.append({"index": key[2], "function": {"arguments": held}})

    def _flush_all(self) -> list[bytes]:
        """Held text of choices that ended without a finish chunk, as one more chunk."""
        if not self.texts:
            return []
        choices = []
        for index in sorted({k[0] for k in self.texts}):
            delta: dict[str, Any] = {}
            self._flush_into(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return []
        base = self.last or {"object": "chat.completion.chunk"}
        chunk = {k: v for k, v in base.items() if k not in ("choices", "usage")}
        return [encode_json({**chunk, "choices": choices})]

    def finish(self, events: list[bytes]) -> list[bytes]:
        if DONE in events:
            return self.events(events)
        return self._flush_all() + self.events(events)
