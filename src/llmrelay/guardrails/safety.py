"""The ``content_safety`` guardrails of a call: deny when a category scores too high.

Input: the texts the model would see (after any PII redaction), one moderation
request before any upstream call. Output: the answer's texts, before the client sees
them. Streams: events are held until :data:`SEGMENT_CHARS` of new text (or the end)
have arrived, then that text is scored with the last :data:`OVERLAP_CHARS` of the
previous segment (a phrase split at the boundary is still seen) and released or the
stream ends with the denial. Each segment costs one moderation call of the time to
its first byte; the segment size is that trade.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.errors import GatewayError, InternalError, InvalidRequest
from llmrelay.guardrails.config import ContentSafety
from llmrelay.guardrails.moderation import Moderation, ModerationFailed
from llmrelay.plugins.chain import StreamStep
from llmrelay.sse import event_data

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.guardrails.scan import GuardState

log = logging.getLogger("llmrelay.guardrails")
SEGMENT_CHARS = 400
OVERLAP_CHARS = 80


def _denial(stage: str, guard: ContentSafety, over: dict[str, float]) -> GatewayError:
    named = ", ".join(f"{c} {s:.2f}" for c, s in sorted(over.items()))
    if stage == "input":
        return InvalidRequest(
            f"the request was blocked by content safety guardrail "
            f"{guard.name}: {named} (threshold {guard.threshold:g})",
            code="content_safety_denied",
        )
    return InvalidRequest(
        f"the answer was withheld by content safety guardrail "
        f"{guard.name}: {named} (threshold {guard.threshold:g})",
        code="content_safety_output_denied",
    )


async def check(
    stage: str,
    guards: tuple[ContentSafety, ...],
    texts: list[str],
    state: GuardState,
    moderation: Moderation | None,
) -> None:
    """Raise the denial of the first guard any category of ``texts`` reaches."""
    texts = [t for t in texts if t.strip()]
    if not guards or not texts:
        return
    started = time.perf_counter()
    try:
        for guard in guards:
            try:
                if moderation is None:
                    raise ModerationFailed("this gateway has no moderation client")
                scores = await moderation.scores(guard, stage, texts)
            except ModerationFailed as exc:
                log.error("content safety guardrail %s failed: %s", guard.name, exc)
                if guard.on_error == "allow":
                    state.failures.append(f"{guard.name}: {exc}")
                    continue
                raise InternalError(
                    f"content safety guardrail {guard.name} failed ({exc}), "
                    "so the call was blocked (guardrails fail closed; set "
                    "on_error: allow to let calls pass)",
                    code="guardrail_failed",
                ) from None
            over = {
                c: s
                for c, s in scores.items()
                if s >= guard.threshold and (not guard.categories or c in guard.categories)
            }
            state.safety.append(
                {
                    "stage": stage,
                    "guardrail": guard.name,
                    "denied": bool(over),
                    "max": round(max(scores.values(), default=0.0), 4),
                }
            )
            if over:
                for category in over:
                    state.add((stage, guard.name, category, "deny"))
                raise _denial(stage, guard, over)
    finally:
        state.seconds += time.perf_counter() - started


def event_texts(event: bytes) -> list[str]:
    """The generated text of one stream event: internal chunks, Anthropic's and the
    Responses API's delta events."""
    data = event_data(event)
    if not data or not data.startswith(b"{"):
        return []
    obj: Any = orjson.loads(data)
    if not isinstance(obj, dict):
        return []
    out: list[str] = []
    for choice in obj.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                out.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    out.append(function["arguments"])
    delta = obj.get("delta")
    if obj.get("type") == "content_block_delta" and isinstance(delta, dict):
        out += [v for k, v in delta.items() if k in ("text", "partial_json") and isinstance(v, str)]
    elif str(obj.get("type", "")).endswith(".delta") and isinstance(delta, str):
        out.append(delta)
    return out


class SafetyStream(StreamStep):
    __slots__ = ("guards", "held", "moderation", "previous", "state", "text")

    def __init__(
        self, guards: tuple[ContentSafety, ...], state: GuardState, moderation: Moderation | None
    ) -> None:
        self.guards, self.state, self.moderation = guards, state, moderation
        self.held: list[bytes] = []
        self.text = ""
        self.previous = ""

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        for event in events:
            self.held.append(event)
            self.text += "".join(event_texts(event))
        if len(self.text) < SEGMENT_CHARS:
            return []
        return await self._release()

    async def _release(self) -> list[bytes]:
        if self.text.strip():
            await check(
                "output", self.guards, [self.previous + self.text], self.state, self.moderation
            )
        self.previous = self.text[-OVERLAP_CHARS:]
        out, self.held, self.text = self.held, [], ""
        return out

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        for event in events:
            self.held.append(event)
            self.text += "".join(event_texts(event))
        return await self._release()
