"""The state of one request as it moves through the pipeline."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from llmrelay.asgi import Request
from llmrelay.errors import ClientClosedRequest, GatewayError, ServiceUnavailable
from llmrelay.governance.key_records import KeyRecord
from llmrelay.plugins.chain import EMPTY, Chain
from llmrelay.providers.base import Usage
from llmrelay.routing.resolve import Target
from llmrelay.store.ids import new_id
from llmrelay.telemetry.interaction import PROBE_HEADER, Interaction

if TYPE_CHECKING:
    from llmrelay.cache.state import CacheState
    from llmrelay.governance.backend import Plan as GovernanceTicket
    from llmrelay.guardrails.scan import GuardState
    from llmrelay.routing.plan import RoutePlan
    from llmrelay.telemetry.tracing import CallSpan


@functools.lru_cache(maxsize=4)
def _http_date(second: int) -> bytes:
    """RFC 9110 ``Date`` value, formatted once per second: it goes on every answer."""
    return formatdate(second, usegmt=True).encode()


_HEX = frozenset("0123456789abcdef")
#: The shared empty chain as a default factory made in C (no Python frame per call, as
#: the ``lambda`` it replaced was; ``Chain`` is a mutable dataclass, so no plain default).
_EMPTY_CHAIN = itertools.repeat(EMPTY).__next__


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """``(trace id, parent span id)`` of a W3C ``traceparent`` (version 00 layout), or
    None when it is not one: https://www.w3.org/TR/trace-context/#traceparent-header."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    trace, span = parts[1], parts[2]
    if len(trace) != 32 or len(span) != 16 or len(parts[3]) != 2:
        return None
    if not _HEX.issuperset(trace + span + parts[0] + parts[3]):
        return None
    if trace == "0" * 32 or span == "0" * 16:
        return None
    return trace, span


def _request_id(header: str | None) -> str:
    if header and len(header) <= 200 and header.isprintable():
        return header
    return "req_" + new_id()


@dataclass(slots=True, eq=False)
class Call:
    request: Request
    route: str
    request_id: str
    id: str = field(default_factory=new_id)
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=functools.partial(datetime.now, UTC))
    key: KeyRecord | None = None
    raw_body: bytes = b""
    body: dict[str, Any] | None = None
    model: str | None = None
    stream: bool = False
    target: Target | None = None
    #: Seconds spent waiting on the upstream (subtracted to get our own overhead).
    upstream_seconds: float = 0.0
    #: ``perf_counter`` when a stream's first content went to the client (0: not yet),
    #: for the time-to-first-token histogram.
    first_token_at: float = 0.0
    usage: Usage | None = None
    finish_reason: str | None = None
    status: int = 0
    error: GatewayError | None = None
    response_body: bytes | None = None
    bytes_out: int = 0
    #: Every upstream try (and circuit-breaker skip), in order: see ``routing/router.py``.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: The route config's bound plan; ``None`` for a direct call to ``target``.
    plan: RoutePlan | None = None
    #: Why the call was cut short from outside ("client" gone, "shutdown").
    interrupted: str | None = None
    #: The task serving the call once it may reach an upstream (what ``interrupt`` cancels).
    task: asyncio.Task[Any] | None = None
    #: The last byte of the answer was handed to the server: nothing left to interrupt.
    replied: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    #: Parts of the overhead a stage measured itself, in ms (``{"guardrails": 1.7}``):
    #: the ``x-llmrelay-overhead-breakdown`` header beside ``x-llmrelay-overhead-ms``.
    overhead_parts: dict[str, float] = field(default_factory=dict)
    #: Top-level fields a plug-in adds to a JSON answer after the codec encoded it in the
    #: client's format (seed 004's cache ``metadata``): a translated answer is encoded
    #: from the internal form, which has no room for them.
    answer_fields: dict[str, Any] = field(default_factory=dict)
    #: Governance: what the call reserved (limits, budgets); settled in ``finally``.
    ticket: GovernanceTicket | None = None
    #: Exact cost in nano-dollars, once known (see ``governance/pricing.py``).
    cost_nanos: int | None = None
    #: ``usage`` was estimated by the gateway (a stream cut before usage arrived).
    usage_estimated: bool = False
    #: Characters of generated content a stream delivered (for a cut stream's usage).
    content_chars: int = 0
    #: The plug-ins of this call (chosen once it is admitted).
    chain: Chain = field(default_factory=_EMPTY_CHAIN)
    #: The answering target took the client's body as is (see the endpoint codecs).
    passthrough: bool = False
    #: The endpoint codec's own per-call state (a translated body, a response id ...).
    codec_state: Any = None
    #: The provider's id of this request (:func:`llmrelay.upstream.upstream_request_id`).
    upstream_request_id: str | None = None
    #: The guardrails plug-in's state for this call (placeholders, findings, time).
    guardrails: GuardState | None = None
    #: What the response cache did for this call (``None``: no cache applied).
    cache: CacheState | None = None
    #: The trace id of the call's span when tracing is on (telemetry/tracing.py).
    span_trace_id: str | None = None
    #: The call's spans when tracing is on (``telemetry.tracing.CallSpan``), else None.
    span: CallSpan | None = None

    @classmethod
    def start(cls, request: Request, route: str) -> Call:
        return cls(
            request=request, route=route, request_id=_request_id(request.header("x-request-id"))
        )

    def trace_id(self) -> str:
        """The call's W3C trace id (32 hex digits) for its log lines and spans: the one of
        the client's valid ``traceparent``, else the call's own id (already 32 random-
        prefixed hex digits, so no extra work per call)."""
        if self.span_trace_id is not None:
            return self.span_trace_id
        parent = self.request.headers.get("traceparent")
        if parent is not None:
            parsed = parse_traceparent(parent)
            if parsed is not None:
                return parsed[0]
        return self.id

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000)

    def interrupt(self, reason: str) -> None:
        """Cut the call short ("client" gone, "shutdown" deadline) by cancelling its task.

        ``pipeline.run`` and the stream relay turn the cancellation into a clean end: an
        error in the endpoint's shape (or an error event), and a row recording it. A call
        that has already sent its whole answer is left alone.
        """
        if (
            self.interrupted is None
            and not self.replied
            and self.task is not None
            and not self.task.done()
        ):
            self.interrupted = reason
            self.task.cancel()

    def interruption(self, what: str) -> GatewayError:
        """The error that ends an interrupted call; a cancellation nobody asked for
        through :meth:`interrupt` is the server stopping (uvicorn cancels what outlives
        it)."""
        if self.interrupted is None:
            self.interrupted = "shutdown"
        if self.interrupted == "client":
            return ClientClosedRequest("the client disconnected before the answer was complete")
        return ServiceUnavailable(
            f"the gateway is shutting down; {what}; retry the request",
            headers={"connection": "close"},
        )

    @property
    def attempt_count(self) -> int:
        """Upstream calls made (circuit-breaker skips are recorded but are no calls)."""
        count = 0
        for attempt in self.attempts:  # (no generator: asked two or three times a call)
            if "status" in attempt:
                count += 1
        return count

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"date", _http_date(int(time.time()))),
            (b"x-request-id", self.request_id.encode("latin-1", "replace")),
            (b"x-llmrelay-overhead-ms", f"{self.overhead_ms():.3f}".encode()),
        ]
        if self.overhead_parts:
            parts = ", ".join(f"{k}={v:.3f}" for k, v in sorted(self.overhead_parts.items()))
            headers.append((b"x-llmrelay-overhead-breakdown", parts.encode()))
        if self.upstream_request_id is not None:
            headers.append((b"x-llmrelay-upstream-request-id", self.upstream_request_id.encode()))
        if self.target is not None:
            headers.append((b"x-llmrelay-provider", self.target.provider.name.encode()))
            headers.append((b"x-llmrelay-model", self.target.model.encode("utf-8")))
        if self.attempts:
            headers.append((b"x-llmrelay-attempts", str(self.attempt_count).encode()))
        for k, v in self.extra_headers.items():
            headers.append((k.encode("latin-1"), v.encode("latin-1")))
        return headers

    def interaction(self, log_bodies: bool) -> Interaction:
        latency = (time.perf_counter() - self.started) * 1000
        err = self.error
        headers = self.request.headers  # twice per call (begin, submit): no method calls
        return Interaction(
            id=self.id,
            request_id=self.request_id,
            trace_id=self.trace_id(),
            created_at=self.created_at,
            route=self.route,
            method=self.request.method,
            status=self.status,
            latency_ms=latency,
            overhead_ms=max(0.0, latency - self.upstream_seconds * 1000),
            ttft_ms=(self.first_token_at - self.started) * 1000 if self.first_token_at else None,
            stream=self.stream,
            model=self.model,
            provider=self.target.provider.name if self.target else None,
            upstream_model=self.target.model if self.target else None,
            api_key_id=self.key.id if self.key else None,
            key_name=self.key.name if self.key else None,
            client_ip=self.request.client_ip,
            user_agent=headers.get("user-agent"),
            usage=self.usage,
            finish_reason=self.finish_reason,
            error_type=err.wire_type if err else None,
            error_message=err.message if err else None,
            request_body=self.raw_body if log_bodies else None,
            response_body=(self._logged_response() if log_bodies else None),
            bytes_out=self.bytes_out,
            attempts=self.attempts,
            cost_nanos=self.cost_nanos,
            team_id=self.key.team.id if self.key and self.key.team else None,
            usage_estimated=self.usage_estimated,
            guardrails=self.guardrails.summary()
            if self.guardrails is not None
            and (self.guardrails.counts or self.guardrails.failures or self.guardrails.safety)
            else None,
            cache=self.cache.result if self.cache is not None else None,
            cost_saved_nanos=self.cache.saved_nanos
            if self.cache is not None and self.cache.hit
            else None,
            probe=headers.get(PROBE_HEADER) == "1",
        )

    def _logged_response(self) -> bytes | None:
        """What the log keeps of the answer: never originals the guardrails restored."""
        guard = self.guardrails
        if guard is not None and guard.response_log is not None:
            return guard.response_log
        return self.response_body
