"""The record of one request/response, as written to the database and the JSON log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmrelay.providers.base import Usage
from llmrelay.redaction import redact

__all__ = ["PROBE_HEADER", "Interaction", "redact", "round_ms"]

#: The request header ``llmrelay probe`` sends on its calls (value ``1``); the call's
#: rows carry ``probe`` so reports can leave probes out.
PROBE_HEADER = "x-llmrelay-probe"


#: Past this many thousandths ``x * 1000`` is no longer exact to well under 0.001.
_EXACT = float(2**40)


def round_ms(x: float) -> float:
    """``round(x, 3)``, the same float, without its decimal conversion in the usual case.

    ``round(x, 3)`` converts ``x`` to its correctly rounded decimal digits and back
    (~3k instructions). ``y = x * 1000`` is within half an ulp of the exact product, so
    when ``y`` is more than 0.001 from a half (and ``|y| < 2**40``: an ulp of ``y`` is
    then under 0.0002) the exact value rounds to the same integer ``n`` (a float, exact
    below ``2**40``), and ``n / 1000.0`` (correctly rounded) is the float ``round``
    returns. Anything else (a near-half, zero, NaN, infinity, huge, an int) goes to
    ``round`` itself.
    """
    if type(x) is float:
        y = x * 1000.0
        n = (y + 0.5) // 1.0  # NaN for NaN and the infinities: the range check fails
        if n and -_EXACT < y < _EXACT and -0.499 < y - n < 0.499:
            return n / 1000.0
    return round(x, 3)


def _usd(nanos: int) -> str:
    """Exact decimal text of integer nano-dollars (never a float)."""
    dollars, rest = divmod(nanos, 1_000_000_000)
    return f"{dollars}.{rest:09d}"


@dataclass(slots=True)
class Interaction:
    id: str
    request_id: str
    created_at: datetime
    route: str
    method: str
    status: int
    latency_ms: float
    overhead_ms: float
    #: A stream: milliseconds from the request to the first content sent to the client.
    ttft_ms: float | None = None
    stream: bool = False
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    api_key_id: str | None = None
    key_name: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None
    bytes_out: int = 0
    #: Every upstream try: ``{provider, model, status, error, message, latency_ms, ...}``.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: Exact cost in nano-dollars (1e-9 USD); None when it could not be priced.
    cost_nanos: int | None = None
    team_id: str | None = None
    #: The usage was estimated by the gateway (a stream cut before usage arrived).
    usage_estimated: bool = False
    #: Guardrail findings: ``{"findings": [{stage, guardrail, entity, action, count,
    #: positions}], "ms": ...}``; types, counts and offsets only, never the values.
    guardrails: dict[str, Any] | None = None
    #: The response cache's verdict (``HIT``, ``MISS``, ``BYPASS``, ``REFRESH``), if any.
    cache: str | None = None
    #: A cache hit: what the answer cost when it was made (nano-dollars), now saved.
    cost_saved_nanos: int | None = None
    #: Sent by ``llmrelay probe`` (``x-llmrelay-probe: 1``): only recorded, never
    #: changes billing or limits.
    probe: bool = False
    #: The W3C trace id of the call (``Call.trace_id``): in the log line, and the span's.
    trace_id: str | None = None

    def token_columns(self) -> dict[str, int]:
        """The token counts as the ``responses`` and ``usage_records`` rows store them."""
        u = self.usage
        if u is None:
            return {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "cached_tokens": 0,
            }
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
            "cached_tokens": u.cached_tokens,
        }

    def log_entry(self) -> dict[str, Any]:
        """The interaction log line's fields (:func:`llmrelay.store.rows.log_line`).

        ``timestamp`` is ``created_at`` itself: orjson writes a datetime as
        ``isoformat()`` does (RFC 3339, ``+00:00``), in Rust; ``isoformat()`` was half
        of what building the entry cost (bench/loop_stalls.py: the spool step)."""
        status = self.status
        entry: dict[str, Any] = {
            "timestamp": self.created_at,
            "level": "info" if status < 400 else "warning" if status < 500 else "error",
            "event": "interaction",
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "route": self.route,
            "method": self.method,
            "status": status,
            "stream": self.stream,
            "duration_ms": round_ms(self.latency_ms),
            "overhead_ms": round_ms(self.overhead_ms),
            "model": self.model,
            "provider": self.provider,
            "upstream_model": self.upstream_model,
            "key_id": self.api_key_id,
            "key_name": self.key_name,
        }
        u = self.usage
        if u is not None:
            usage = entry["usage"] = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
                "cached_tokens": u.cached_tokens,
            }
            if self.usage_estimated:
                usage["estimated"] = True
        cost = self.cost_nanos
        if cost is not None:
            entry["cost_usd"] = _usd(cost)
        if self.probe:
            entry["probe"] = True
        if self.cache is not None:
            entry["cache"] = self.cache
        saved = self.cost_saved_nanos
        if saved is not None:
            entry["cost_saved_usd"] = _usd(saved)
        if self.finish_reason:
            entry["finish_reason"] = self.finish_reason
        attempts = self.attempts
        if attempts and (len(attempts) > 1 or attempts[0].get("status") != 200):
            entry["attempts"] = attempts
        if self.guardrails:
            entry["guardrails"] = self.guardrails
        if self.error_type:
            entry["error"] = {"type": self.error_type, "message": redact(self.error_message or "")}
        if self.request_body is not None:
            entry["request"] = redact(self.request_body.decode("utf-8", "replace"))
        if self.response_body is not None:
            entry["response"] = redact(self.response_body.decode("utf-8", "replace"))
        return entry
