"""``/admin/usage``: usage and spend reports from the rollups, and budget state.

``GET /admin/usage`` sums ``usage_daily`` by day or month, per key, team, model and
provider (``by`` keeps some of them), filtered; ``format=csv`` exports the same rows as
``text/csv``. ``GET /admin/usage/budgets`` lists each key's spend this month (UTC,
from ``monthly_usage_summary``) against its monthly budget. Neither reads a per-call
row.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import db
from llmrelay.admin.deps import Reader, services_of
from llmrelay.admin.paging import Limit, Offset
from llmrelay.admin.usage_query import CSV_LIMIT, DIMENSIONS, SUMS, UsageFilter, usage_rows
from llmrelay.errors import InvalidRequest
from llmrelay.governance.pricing import NANOS_PER_USD, format_usd
from llmrelay.store.schema import ApiKey, MonthlyUsageSummary

router = APIRouter(prefix="/admin/usage", tags=["usage"])

Id = Annotated[str | None, Query(max_length=64)]
#: Warn when this share of a budget is spent.
WARNING_SHARE = Decimal("0.8")


def _dims(by: str | None) -> tuple[str, ...]:
    if by is None:
        return tuple(DIMENSIONS)
    dims = tuple(dict.fromkeys(p.strip() for p in by.split(",") if p.strip()))
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise InvalidRequest(
            f"by: unknown dimension {unknown[0]!r} (use {', '.join(DIMENSIONS)})", param="by"
        )
    return dims


@router.get("", response_model=None)
async def usage(
    principal: Reader,
    request: Request,
    key: Id = None,
    team: Id = None,
    model: Annotated[str | None, Query(max_length=300)] = None,
    provider: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[date | None, Query(alias="from", description="first day (UTC)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day, inclusive")] = None,
    group: Literal["day", "month"] = "day",
    by: Annotated[
        str | None, Query(max_length=100, description="of key,team,model,provider; empty: none")
    ] = None,
    format: Literal["json", "csv"] = "json",
    include_probes: Annotated[
        bool, Query(description="count the calls of llmrelay probe too (default: left out)")
    ] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any] | Response:
    if start is not None and end is not None and start > end:
        raise InvalidRequest("from: after to", param="from")
    dims = _dims(by)
    filters = UsageFilter(key, team, model, provider, start, end, include_probes)
    csv_out = format == "csv"

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        return await usage_rows(
            session, filters, group, dims, CSV_LIMIT if csv_out else limit, 0 if csv_out else offset
        )

    rows, total, totals = await db.read(services_of(request), work)
    if csv_out:
        return _csv(rows, dims)
    return {"data": rows, "total": total, "limit": limit, "offset": offset, "totals": totals}


def _csv(rows: list[dict[str, Any]], dims: tuple[str, ...]) -> Response:
    out = io.StringIO()
    fields = ["period", *dims, *SUMS, "cost_usd"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # A spreadsheet runs a cell starting with = + - @ as a formula: names are data.
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="llmrelay-usage.csv"'},
    )


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/budgets")
async def budgets(
    principal: Reader,
    request: Request,
    key: Id = None,
    team: Id = None,
    state: Literal["ok", "warning", "exceeded", "no_budget"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Each key's spend this month against its monthly budget (``limit_state``)."""
    now = datetime.now(UTC)
    summary = (
        select(
            MonthlyUsageSummary.api_key_id,
            MonthlyUsageSummary.total_cost_nanos,
            MonthlyUsageSummary.total_requests,
        )
        .where(MonthlyUsageSummary.year == now.year, MonthlyUsageSummary.month == now.month)
        .subquery()
    )
    query = select(
        ApiKey.id,
        ApiKey.name,
        ApiKey.team_id,
        ApiKey.monthly_budget,
        ApiKey.enabled,
        func.coalesce(summary.c.total_cost_nanos, 0),
        func.coalesce(summary.c.total_requests, 0),
    ).outerjoin(summary, summary.c.api_key_id == ApiKey.id)
    if key is not None:
        query = query.where(ApiKey.id == key)
    if team is not None:
        query = query.where(ApiKey.team_id == team)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        rows = (await session.execute(query.order_by(ApiKey.name))).all()
        return [_budget_row(*r) for r in rows]

    rows = await db.read(services_of(request), work)
    if state is not None:
        rows = [r for r in rows if r["limit_state"] == state]
    return {
        "period": f"{now.year:04d}-{now.month:02d}",
        "data": rows[offset : offset + limit],
        "total": len(rows),
        "limit": limit,
        "offset": offset,
    }


def _budget_row(
    key_id: str,
    name: str,
    team_id: str | None,
    budget: Any,
    enabled: bool,
    spent_nanos: int,
    requests: int,
) -> dict[str, Any]:
    spent = int(spent_nanos or 0)
    row: dict[str, Any] = {
        "api_key_id": key_id,
        "name": name,
        "team_id": team_id,
        "enabled": bool(enabled),
        "requests": int(requests or 0),
        "spent_nanos": spent,
        "spent_usd": format_usd(spent),
        "monthly_budget_usd": None,
        "remaining_usd": None,
        "used_share": None,
        "limit_state": "no_budget",
    }
    if budget is None:
        return row
    budget_nanos = int(Decimal(str(budget)) * NANOS_PER_USD)
    share = Decimal(spent) / budget_nanos if budget_nanos > 0 else Decimal(1)
    row.update(
        monthly_budget_usd=format_usd(budget_nanos),
        remaining_usd=format_usd(max(0, budget_nanos - spent)),
        used_share=float(round(share, 4)),
        limit_state="exceeded" if share >= 1 else "warning" if share >= WARNING_SHARE else "ok",
    )
    return row
