"""``/admin/requests``: the interaction log, searched and read one call at a time.

The listing pages through ``requests`` (indexed by time, and by key and time) newest
first, with the answer's status, latency and tokens from ``responses``. One call's
detail adds its upstream attempts, cost, cache verdict and guardrail results (which
ride in the attempts JSON as its last entry, ``{"guardrails": ...}``, see
docs/guardrails.md). Bodies are shown only if the gateway logged them (``log_bodies``),
and then as they were stored: already redacted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import db
from llmrelay.admin.deps import Reader, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import as_utc
from llmrelay.errors import InvalidRequest, NotFound
from llmrelay.governance.pricing import format_usd
from llmrelay.store.schema import RequestRow, ResponseRow

router = APIRouter(prefix="/admin/requests", tags=["requests"])

#: Cache verdicts that mean the answer came from the response cache.
HITS = ("HIT", "SEMANTIC")


def _summary(req: RequestRow, resp: ResponseRow | None) -> dict[str, Any]:
    return {
        "id": req.id,
        "request_id": req.request_id,
        "created_at": as_utc(req.created_at).isoformat(),
        "route": req.route,
        "method": req.method,
        "model": req.model,
        "provider": req.provider,
        "upstream_model": req.upstream_model,
        "api_key_id": req.api_key_id,
        "stream": bool(req.stream),
        "status_code": req.status_code,
        "cache": req.cache,
        "cost_nanos": req.cost_nanos,
        "cost_usd": None if req.cost_nanos is None else format_usd(req.cost_nanos),
        "latency_ms": None if resp is None else resp.latency_ms,
        "prompt_tokens": None if resp is None else resp.prompt_tokens,
        "completion_tokens": None if resp is None else resp.completion_tokens,
        # What the guardrails found (types and counts, never values): the UI's badge.
        "guardrails": split_attempts(req.attempts)[1],
    }


@router.get("", response_model=Page[dict[str, Any]])
async def list_requests(
    principal: Reader,
    request: Request,
    key: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=300)] = None,
    status: Annotated[
        str | None, Query(pattern=r"^([1-5]\d\d|[1-5]xx)$", description="200 or 4xx")
    ] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    cache_hit: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[dict[str, Any]]:
    if start is not None and end is not None and start > end:
        raise InvalidRequest("from: after to", param="from")
    query = select(RequestRow)
    if key is not None:
        query = query.where(RequestRow.api_key_id == key)
    if model is not None:
        query = query.where(RequestRow.model == model)
    if status is not None:
        if status.endswith("xx"):
            low = int(status[0]) * 100
            query = query.where(RequestRow.status_code.between(low, low + 99))
        else:
            query = query.where(RequestRow.status_code == int(status))
    if start is not None:
        query = query.where(RequestRow.created_at >= start)
    if end is not None:
        query = query.where(RequestRow.created_at < end)
    if cache_hit is True:
        query = query.where(RequestRow.cache.in_(HITS))
    elif cache_hit is False:
        query = query.where((RequestRow.cache.is_(None)) | (RequestRow.cache.not_in(HITS)))

    async def work(session: AsyncSession) -> Page[dict[str, Any]]:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = (
            query.order_by(RequestRow.created_at.desc(), RequestRow.id.desc())
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        rows = await session.execute(
            select(RequestRow, ResponseRow)
            .join(page, page.c.id == RequestRow.id)
            .outerjoin(ResponseRow, ResponseRow.request_id == RequestRow.id)
            .order_by(RequestRow.created_at.desc(), RequestRow.id.desc())
        )
        data = [_summary(req, resp) for req, resp in rows.all()]
        return Page(data=data, total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


def split_attempts(
    entries: list[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The upstream attempts, and the guardrail results riding as the last entry."""
    attempts: list[dict[str, Any]] = []
    guardrails: dict[str, Any] | None = None
    for entry in entries or []:
        if isinstance(entry, dict) and "guardrails" in entry and "status" not in entry:
            found = entry["guardrails"]
            guardrails = found if isinstance(found, dict) else {"value": found}
        elif isinstance(entry, dict):
            attempts.append(entry)
    return attempts, guardrails


@router.get("/{row_id}")
async def get_request(
    row_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Reader,
    request: Request,
) -> dict[str, Any]:
    """One call: its summary, attempts, cost, cache and guardrail results, bodies."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        found = (
            await session.execute(
                select(RequestRow, ResponseRow)
                .outerjoin(ResponseRow, ResponseRow.request_id == RequestRow.id)
                .where(RequestRow.id == row_id)
            )
        ).first()
        if found is None:
            raise NotFound(f"no logged request with id {row_id!r}", param="id")
        req, resp = found
        attempts, guardrails = split_attempts(req.attempts)
        detail: dict[str, Any] = {
            **_summary(req, resp),
            "cost_saved_usd": (
                None if req.cost_saved_nanos is None else format_usd(req.cost_saved_nanos)
            ),
            "attempts": attempts,
            "guardrails": guardrails,
            "request_body": req.body,
            "response": None if resp is None else _response(resp),
        }
        return detail

    return await db.read(services_of(request), work)


def _response(resp: ResponseRow) -> dict[str, Any]:
    return {
        "status_code": resp.status_code,
        "latency_ms": resp.latency_ms,
        "overhead_ms": resp.overhead_ms,
        "prompt_tokens": resp.prompt_tokens,
        "completion_tokens": resp.completion_tokens,
        "total_tokens": resp.total_tokens,
        "cached_tokens": resp.cached_tokens,
        "finish_reason": resp.finish_reason,
        "error_type": resp.error_type,
        "error_message": resp.error_message,
        "bytes_out": resp.bytes_out,
        "body": resp.body,
    }
