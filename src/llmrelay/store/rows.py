"""The ``requests`` and ``responses`` rows of one :class:`Interaction`.

Values are taken as they are; :func:`llmrelay.store.bulk.insert_rows` bounds each for
its column (:mod:`llmrelay.store.bounds`). A request has exactly one response row, with
the same id, so writing a row twice (a replay) is detected by that id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from llmrelay.store.bounds import clean_json
from llmrelay.telemetry.interaction import Interaction, redact


def request_row(it: Interaction, bodies: bool) -> dict[str, Any]:
    return {
        "id": it.id,
        "request_id": it.request_id,
        "created_at": it.created_at,
        "route": it.route,
        "method": it.method,
        "model": it.model,
        "provider": it.provider,
        "upstream_model": it.upstream_model,
        "api_key_id": it.api_key_id,
        "stream": it.stream,
        "status_code": it.status,
        "client_ip": it.client_ip,
        "user_agent": it.user_agent or None,
        "body": _text(it.request_body) if bodies else None,
        # Guardrail findings ride in the attempts JSON as a last entry with no status
        # (no schema change until 0004_cache lands: see docs/guardrails.md).
        "attempts": (
            [*it.attempts, {"guardrails": it.guardrails}] if it.guardrails else it.attempts or None
        ),
        "cost_nanos": it.cost_nanos,
        "cache": it.cache,
        "cost_saved_nanos": it.cost_saved_nanos,
    }


def response_row(it: Interaction, bodies: bool) -> dict[str, Any]:
    return {
        "id": it.id,  # one response per request: the same id makes replays idempotent
        "request_id": it.id,
        "created_at": it.created_at,
        "status_code": it.status,
        "latency_ms": it.latency_ms,
        "overhead_ms": it.overhead_ms,
        **it.token_columns(),
        "finish_reason": it.finish_reason,
        "error_type": it.error_type,
        "error_message": redact(it.error_message) if it.error_message else None,
        "body": _text(it.response_body) if bodies else None,
        "bytes_out": it.bytes_out,
    }


def _text(body: bytes | None) -> str | None:
    return redact(body.decode("utf-8", "replace")) if body is not None else None


def log_line(it: Interaction) -> bytes:
    """One JSON line of the interaction log (text that is not valid UTF-8 cleaned first)."""
    entry = it.log_entry()
    try:
        return orjson.dumps(entry, default=repr) + b"\n"
    except TypeError:  # text that is not valid UTF-8
        return orjson.dumps(clean_json(entry), default=repr) + b"\n"


def unfinished_row(stub: Interaction) -> Interaction:
    """The row of a call whose process died before it ended: what it was, outcome unknown."""
    return replace(
        stub,
        status=503,
        error_type="gateway_stopped",
        error_message="the gateway process stopped (killed) while this call was running; "
        "whether the upstream answered, and what it billed, is unknown",
    )
