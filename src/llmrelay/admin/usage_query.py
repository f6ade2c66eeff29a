"""The ``/admin/usage`` query: sums of the daily rollup, by period and dimensions.

Reads only ``usage_daily`` (one row per day, key, team, model and provider), never the
per-call ``requests`` / ``usage_records`` rows: a month of a busy gateway is millions
of calls but a few thousand rollup rows, so a report costs the same whatever the
traffic. A month is the sum of its days (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.governance.pricing import format_usd
from llmrelay.store.schema import DailyUsage

Group = Literal["day", "month"]
#: The dimensions a report may keep (``by``), and their rollup columns.
DIMENSIONS = {
    "key": DailyUsage.api_key_id,
    "team": DailyUsage.team_id,
    "model": DailyUsage.model,
    "provider": DailyUsage.provider,
}
SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "cache_hits", "errors")
#: Rows a CSV export holds at most (an export of every key by day for years).
CSV_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class UsageFilter:
    key: str | None = None
    team: str | None = None
    model: str | None = None
    provider: str | None = None
    start: date | None = None
    end: date | None = None  #: inclusive
    #: Count the calls of ``llmrelay probe`` too (left out by default: they are the
    #: gateway's own checks, not a client's traffic).
    include_probes: bool = False

    def where(self) -> list[Any]:
        out: list[Any] = []
        for value, column in (
            (self.key, DailyUsage.api_key_id),
            (self.team, DailyUsage.team_id),
            (self.model, DailyUsage.model),
            (self.provider, DailyUsage.provider),
        ):
            if value is not None:
                out.append(column == value)
        if self.start is not None:
            out.append(DailyUsage.day >= self.start)
        if self.end is not None:
            out.append(DailyUsage.day <= self.end)
        if not self.include_probes:
            out.append(DailyUsage.probe.is_(False))
        return out


def _period(dialect: str, group: Group) -> Any:
    if group == "day":
        return DailyUsage.day
    if dialect == "postgresql":
        return sa.func.to_char(DailyUsage.day, "YYYY-MM")
    return sa.func.strftime("%Y-%m", DailyUsage.day)


def _row(period: Any, dims: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"period": str(period)}
    for name, value in zip(dims, values[: len(dims)], strict=True):
        out[name] = value or None  # "" in the rollup: none
    sums = dict(zip(SUMS, (int(v or 0) for v in values[len(dims) :]), strict=True))
    out.update(sums)
    out["cost_usd"] = format_usd(sums["cost_nanos"])
    return out


async def usage_rows(
    session: AsyncSession,
    filters: UsageFilter,
    group: Group,
    dims: tuple[str, ...],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """One page of the report, the number of its rows, and the totals of all of them."""
    dialect = session.get_bind().dialect.name
    period = _period(dialect, group).label("period")
    columns = [DIMENSIONS[d].label(d) for d in dims]
    sums = [sa.func.sum(getattr(DailyUsage, c)).label(c) for c in SUMS]
    where = filters.where()
    grouped = (
        sa.select(period, *columns, *sums)
        .where(*where)
        .group_by(period, *(DIMENSIONS[d] for d in dims))
    )
    total = await session.scalar(sa.select(sa.func.count()).select_from(grouped.subquery())) or 0
    ordered = grouped.order_by(period, *(DIMENSIONS[d] for d in dims)).limit(limit).offset(offset)
    rows = [_row(r[0], dims, tuple(r[1:])) for r in (await session.execute(ordered)).all()]
    all_sums = (await session.execute(sa.select(*sums).where(*where))).one()
    totals: dict[str, Any] = dict(zip(SUMS, (int(v or 0) for v in all_sums), strict=True))
    totals["cost_usd"] = format_usd(totals["cost_nanos"])
    return rows, int(total), totals
