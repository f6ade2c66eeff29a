"""Stored probe runs: one ``probe_results`` row per model per run.

What the rows are for: ``llmrelay probe history`` (success rate and latency percentiles
per model), and ``/health/ready``'s last probe per provider. Rows hold no key, URL or
answer text, only outcomes, so both can be shown to whoever may see readiness detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from llmrelay.store.database import Database
from llmrelay.store.ids import new_id, utcnow
from llmrelay.store.tables import probe_results

from .report import Report

#: Providers ``/health/ready`` shows at most (a bounded answer whatever the history holds).
READY_PROVIDERS = 50


async def save(engine: Database, report: Report) -> int:
    """Write the run's rows; returns how many."""
    at = report.finished_at or utcnow()
    rows: list[dict[str, Any]] = []
    for m in report.models:
        failed = m.failed
        rows.append(
            {
                "id": new_id(),
                "run_id": report.run_id,
                "created_at": at,
                "provider": m.target.provider[:200],
                "model": m.target.model[:300],
                "ok": m.ok,
                "reason": failed.reason if failed else None,
                "status_code": failed.status if failed else None,
                "ttft_ms": m.ttft_ms,
                "total_ms": m.total_ms,
                "tokens": m.tokens,
                "cost_nanos": m.cost_nanos,
                "tiers": [
                    {
                        "tier": t.tier,
                        "ok": t.ok,
                        "reason": t.reason,
                        "status": t.status,
                        "ms": round(t.ms, 1),
                    }
                    for t in m.tiers
                ],
            }
        )
    if rows:
        async with engine.begin() as conn:
            await conn.execute(insert(probe_results), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class ModelHistory:
    """One model's record over the window."""

    model: str
    provider: str
    #: ``YYYY-MM-DD`` (UTC) when the history is split by day, else None.
    day: str | None
    runs: int
    passed: int
    p50_ms: float | None
    p95_ms: float | None
    last_at: datetime
    last_ok: bool

    @property
    def success_rate(self) -> float:
        return 100.0 * self.passed / self.runs if self.runs else 0.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every value shown was measured)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def model_history(
    engine: Database, *, model: str | None = None, days: float = 30.0, by_day: bool = False
) -> list[ModelHistory]:
    """Per model (and per day with ``by_day``): runs, passes, p50/p95 of the passing
    runs' total time, the last run."""
    since = utcnow() - timedelta(days=days)
    query = select(
        probe_results.c.model,
        probe_results.c.provider,
        probe_results.c.ok,
        probe_results.c.total_ms,
        probe_results.c.created_at,
    ).where(probe_results.c.created_at >= since)
    if model is not None:
        query = query.where(probe_results.c.model == model)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(probe_results.c.created_at))).all()
    grouped: dict[tuple[str, str, str | None], list[Any]] = {}
    for row in rows:
        day = _day(row.created_at) if by_day else None
        grouped.setdefault((row.model, row.provider, day), []).append(row)
    out = []
    for (name, provider, day), items in sorted(grouped.items(), key=lambda kv: str(kv[0])):
        latencies = [float(r.total_ms) for r in items if r.ok]
        out.append(
            ModelHistory(
                model=name,
                provider=provider,
                day=day,
                runs=len(items),
                passed=sum(1 for r in items if r.ok),
                p50_ms=percentile(latencies, 50),
                p95_ms=percentile(latencies, 95),
                last_at=items[-1].created_at,
                last_ok=bool(items[-1].ok),
            )
        )
    return out


async def last_probe_by_provider(engine: Database) -> dict[str, dict[str, Any]]:
    """Each provider's latest probe: when, how many models passed (bounded)."""
    latest = (
        select(probe_results.c.provider, func.max(probe_results.c.created_at).label("at"))
        .group_by(probe_results.c.provider)
        .order_by(func.max(probe_results.c.created_at).desc())
        .limit(READY_PROVIDERS)
        .subquery()
    )
    query = select(probe_results.c.provider, probe_results.c.ok, probe_results.c.created_at).join(
        latest,
        (probe_results.c.provider == latest.c.provider)
        & (probe_results.c.created_at == latest.c.at),
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row.provider, {"at": _iso(row.created_at), "tested": 0, "passed": 0})
        entry["tested"] += 1
        entry["passed"] += 1 if row.ok else 0
    return out


def _day(value: datetime | str) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else str(value)[:10]


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
