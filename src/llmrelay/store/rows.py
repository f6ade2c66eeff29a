"""The ``requests`` and ``responses`` rows of one :class:`Interaction`.

Values are taken as they are; :func:`llmrelay.store.bulk.insert_rows` bounds each for
its column (:mod:`llmrelay.store.bounds`). A request has exactly one response row, with
the same id, so writing a row twice (a replay) is detected by that id.
"""

from __future__ import annotations

from typing import Any

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
        "attempts": it.attempts or None,
        "cost_nanos": it.cost_nanos,
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
