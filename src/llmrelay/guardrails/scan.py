"""Running a stage's guardrails over one text: find, record, then deny, redact or flag.

:class:`GuardState` is one call's guardrail state (its placeholders, what was found,
the time spent); :func:`scan_text` checks a whole text, :class:`StreamScan` a text
arriving in deltas, holding back no more than the longest entity it matches so an
entity split across chunks is still seen whole.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmrelay.errors import GatewayError, InternalError, InvalidRequest
from llmrelay.guardrails.config import GuardrailsConfig, PiiGuardrail
from llmrelay.guardrails.entities import CONTEXT_CHARS, Finding, detect, window
from llmrelay.guardrails.ner import NameModel, TextTooLong
from llmrelay.guardrails.vault import StreamRestore, Vault

log = logging.getLogger("llmrelay.guardrails")
#: Positions kept per (stage, guardrail, entity, action): enough to locate, bounded.
MAX_POSITIONS = 20
#: With NER on, a stream's text is scanned once per this many new characters (beyond
#: the window) rather than per delta: one model call costs ~10 ms whatever its length,
#: so a call per 4-character token would cost more CPU than the model's own answer.
NER_SEGMENT = 200

Key = tuple[str, str, str, str]  # stage, guardrail, entity, action
#: Counts a finding in the gateway's metrics (``Metrics.count_guardrail``).
CountFinding = Callable[[str, str, str, str], None]


@dataclass(slots=True)
class GuardState:
    """One call's guardrails: never shared between calls, never logged whole."""

    config: GuardrailsConfig
    #: Each finding is counted in the metrics as it is made, so a denied call (which
    #: leaves no row) is counted too.
    count: CountFinding | None = None
    vault: Vault = field(default_factory=Vault)
    counts: Counter[Key] = field(default_factory=Counter)
    positions: dict[Key, list[list[int]]] = field(default_factory=dict)
    #: Guardrails that failed and were let pass (``on_error: allow``).
    failures: list[str] = field(default_factory=list)
    #: Content safety checks: ``{stage, guardrail, denied, max}`` (scores, no text).
    safety: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: The process's NER model (``names: ner`` guardrails), when the gateway has one.
    ner: NameModel | None = None
    #: The answer as the model gave it after the output guardrails, before the
    #: originals were restored: what the interaction log stores instead.
    response_log: bytes | None = None

    def add(self, key: Key) -> None:
        self.counts[key] += 1
        if self.count is not None:
            self.count(*key)

    def record(self, stage: str, guardrail: PiiGuardrail, hit: Finding, offset: int) -> None:
        key = (stage, guardrail.name, hit.entity, guardrail.action)
        self.add(key)
        kept = self.positions.setdefault(key, [])
        if len(kept) < MAX_POSITIONS:
            kept.append([offset + hit.start, offset + hit.end])

    def header(self) -> str:
        """``input.redact.EMAIL=1, output.flag.PHONE=2``: counts, never values."""
        # A moderation service names its categories: keep the header printable ASCII.
        return ", ".join(
            f"{stage}.{action}.{_ascii(entity)}={n}"
            for (stage, _, entity, action), n in sorted(self.counts.items())
        )

    def summary(self) -> dict[str, Any]:
        """The findings for the interaction row: types, counts, positions."""
        findings = [
            {
                "stage": s,
                "guardrail": g,
                "entity": e,
                "action": a,
                "count": n,
                "positions": self.positions.get((s, g, e, a), []),
            }
            for (s, g, e, a), n in sorted(self.counts.items())
        ]
        out: dict[str, Any] = {"findings": findings, "ms": round(self.seconds * 1000, 3)}
        if self.failures:
            out["failures"] = self.failures
        if self.safety:
            out["content_safety"] = self.safety
        return out


def _ascii(text: str) -> str:
    return "".join(c if " " < c < "\x7f" and c not in ",=" else "_" for c in text)[:64]


def _detect(guardrail: PiiGuardrail, text: str, state: GuardState) -> list[Finding]:
    try:
        return detect(text, guardrail, state.ner)
    except Exception as exc:  # a detector bug, a custom regex blowing up, the NER model
        # Our own refusals say why (they hold no text); anything else only its type.
        why = str(exc) if isinstance(exc, TextTooLong) else type(exc).__name__
        log.error("guardrail %s failed: %s", guardrail.name, why)
        if guardrail.on_error == "allow":
            state.failures.append(f"{guardrail.name}: {type(exc).__name__}")
            return []
        raise InternalError(
            f"guardrail {guardrail.name} failed ({why}), so the call was "
            "blocked (guardrails fail closed; set on_error: allow to let calls pass)",
            code="guardrail_failed",
        ) from None


def denial(stage: str, guardrail: PiiGuardrail, entities: set[str]) -> GatewayError:
    found = ", ".join(sorted(entities))
    if stage == "input":
        return InvalidRequest(
            f"the request was blocked by guardrail {guardrail.name}: it contains {found}",
            code="guardrail_denied",
        )
    return InvalidRequest(
        f"the answer was withheld by guardrail {guardrail.name}: it contains {found}",
        code="guardrail_output_denied",
    )


def hits_of(
    guardrails: tuple[PiiGuardrail, ...], text: str, state: GuardState
) -> list[tuple[PiiGuardrail, Finding]]:
    return [(g, f) for g in guardrails for f in _detect(g, text, state)]


def act(
    stage: str,
    text: str,
    hits: list[tuple[PiiGuardrail, Finding]],
    state: GuardState,
    offset: int = 0,
) -> str:
    """Record ``hits`` in ``text``, then deny (raise), redact or let them pass."""
    for guardrail, hit in hits:
        state.record(stage, guardrail, hit, offset)
    for guardrail, _ in hits:
        if guardrail.action == "deny":
            raise denial(stage, guardrail, {h.entity for g, h in hits if g is guardrail})
    redact = sorted(
        ((h, g) for g, h in hits if g.action == "redact"),
        key=lambda p: (p[0].start, p[0].start - p[0].end),
    )
    if not redact:
        return text
    parts: list[str] = []
    at = 0
    for hit, guardrail in redact:
        if hit.start < at:
            continue  # overlaps a span another guardrail redacted
        parts.append(text[at : hit.start])
        parts.append(
            state.vault.placeholder(
                hit.entity,
                text[hit.start : hit.end],
                guardrail.placeholder,
                restore=stage == "input" and guardrail.restore,
            )
        )
        at = hit.end
    parts.append(text[at:])
    return "".join(parts)


def scan_text(
    stage: str, guardrails: tuple[PiiGuardrail, ...], text: str, state: GuardState
) -> str:
    if not guardrails or not text:
        return text
    started = time.perf_counter()
    try:
        return act(stage, text, hits_of(guardrails, text, state), state)
    finally:
        state.seconds += time.perf_counter() - started


class StreamScan:
    """The output guardrails over one text arriving in deltas.

    Text is let out once it is more than the window (the longest entity matched) from
    the end of what has arrived and is not inside an entity found; the last
    :data:`CONTEXT_CHARS` let out stay in view for context words (``CMND 12…``).
    """

    __slots__ = ("guardrails", "offset", "pending", "state", "step", "tail", "window")

    def __init__(self, guardrails: tuple[PiiGuardrail, ...], state: GuardState) -> None:
        self.guardrails = guardrails
        self.state = state
        self.window = max((window(g) for g in guardrails), default=0)
        #: New characters to gather past the window before a scan (NER: per segment).
        self.step = NER_SEGMENT if any(g.uses_ner for g in guardrails) else 0
        self.pending = ""
        self.tail = ""
        self.offset = 0  # characters let out so far (positions in the findings)

    def feed(self, delta: str, *, final: bool = False) -> str:
        self.pending += delta
        if not self.pending:
            return ""
        if not final and len(self.pending) <= self.window + self.step:
            return ""
        started = time.perf_counter()
        try:
            return self._release(final)
        finally:
            self.state.seconds += time.perf_counter() - started

    def _release(self, final: bool) -> str:
        view = self.tail + self.pending
        shift = len(self.tail)
        cut = len(self.pending) if final else len(self.pending) - self.window
        hits: list[tuple[PiiGuardrail, Finding]] = []
        for guardrail, hit in hits_of(self.guardrails, view, self.state):
            start, end = hit.start - shift, hit.end - shift
            if start < 0:
                continue  # began in text already let out (checked then)
            hits.append((guardrail, Finding(hit.entity, start, end)))
        moved = True
        while moved:  # never cut inside an entity (lowering the cut may split another)
            moved = False
            for _, hit in hits:
                if hit.start < cut < hit.end:
                    cut, moved = hit.start, True
        ready = [(g, h) for g, h in hits if h.end <= cut]
        out = act("output", self.pending[:cut], ready, self.state, self.offset)
        self.tail = (self.tail + self.pending[:cut])[-CONTEXT_CHARS:]
        self.offset += cut
        self.pending = self.pending[cut:]
        return out

    def flush(self) -> str:
        return self.feed("", final=True)


class TextGuard:
    """One text of a streamed answer (a choice's content, a tool call's arguments):
    the output guardrails first (on what the model wrote), then the restore."""

    __slots__ = ("restore", "scan")

    def __init__(self, config: GuardrailsConfig, state: GuardState, restoring: bool) -> None:
        self.scan = StreamScan(config.output, state) if config.output else None
        self.restore = StreamRestore(state.vault) if restoring else None

    def feed(self, delta: str) -> str:
        if self.scan is not None:
            delta = self.scan.feed(delta)
        return self.restore.feed(delta) if self.restore is not None else delta

    def flush(self) -> str:
        text = self.scan.flush() if self.scan is not None else ""
        if self.restore is not None:
            text = self.restore.feed(text) + self.restore.flush()
        return text
