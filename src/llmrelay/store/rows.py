"""The ``requests`` and ``responses`` rows of one :class:`Interaction`.

Values are taken as they are; :func:`llmrelay.store.bulk.insert_statements` bounds each for
its column (:mod:`llmrelay.store.bounds`). A request has exactly one response row, with
the same id, so writing a row twice (a replay) is detected by that id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from llmrelay.store.bounds import clean_json
from llmrelay.telemetry.interaction import Interaction, redact

#: The ``requests`` columns, in the order of :func:`request_values`.
REQUEST_COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "route",
    "method",
    "model",
    "provider",
    "upstream_model",
    "api_key_id",
    "stream",
    "status_code",
    "client_ip",
    "user_agent",
    "body",
    "attempts",
    "cost_nanos",
    "cache",
    "cost_saved_nanos",
)


def request_values(it: Interaction, bodies: bool) -> tuple[Any, ...]:
    """The ``requests`` row as a tuple (no dict per row), in :data:`REQUEST_COLUMNS` order."""
    return (
        it.id,
        it.request_id,
        it.created_at,
        it.route,
        it.method,
        it.model,
        it.provider,
        it.upstream_model,
        it.api_key_id,
        it.stream,
        it.status,
        it.client_ip,
        it.user_agent or None,
        _text(it.request_body) if bodies else None,
        # Guardrail findings ride in the attempts JSON as a last entry with no status
        # (no schema change until 0004_cache lands: see docs/guardrails.md).
        [*it.attempts, {"guardrails": it.guardrails}] if it.guardrails else it.attempts or None,
        it.cost_nanos,
        it.cache,
        it.cost_saved_nanos,
    )


#: The ``responses`` columns, in the order of :func:`response_values`.
RESPONSE_COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "status_code",
    "latency_ms",
    "overhead_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "finish_reason",
    "error_type",
    "error_message",
    "body",
    "bytes_out",
)


def response_values(it: Interaction, bodies: bool) -> tuple[Any, ...]:
    """The ``responses`` row as a tuple, in :data:`RESPONSE_COLUMNS` order."""
    u = it.usage
    return (
        it.id,  # one response per request: the same id makes replays idempotent
        it.id,
        it.created_at,
        it.status,
        it.latency_ms,
        it.overhead_ms,
        *(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens)
            if u
            else _NO_TOKENS
        ),
        it.finish_reason,
        it.error_type,
        redact(it.error_message) if it.error_message else None,
        _text(it.response_body) if bodies else None,
        it.bytes_out,
    )


_NO_TOKENS = (0, 0, 0, 0)


def _text(body: bytes | None) -> str | None:
    return redact(body.decode("utf-8", "replace")) if body is not None else None


def log_line(it: Interaction) -> bytes:
    """One JSON line of the interaction log (text that is not valid UTF-8 cleaned first)."""
    entry = it.log_entry()
    try:
        return orjson.dumps(entry, default=repr, option=_NEWLINE)
    except TypeError:  # text that is not valid UTF-8
        # The datetime as text first, as orjson writes it: clean_json would repr() it.
        entry["timestamp"] = it.created_at.isoformat()
        return orjson.dumps(clean_json(entry), default=repr, option=_NEWLINE)


#: The ``\n`` written by orjson into its own buffer (no second bytes object per line).
_NEWLINE = orjson.OPT_APPEND_NEWLINE


def unfinished_row(stub: Interaction) -> Interaction:
    """The row of a call whose process died before it ended: what it was, outcome unknown."""
    return replace(
        stub,
        status=503,
        error_type="gateway_stopped",
        error_message="the gateway process stopped (killed) while this call was running; "
        "whether the upstream answered, and what it billed, is unknown",
    )
