"""The daily usage rollup (``usage_daily``), added to with each batch of usage rows.

Called by :func:`~llmrelay.governance.usage.write_usage` in the transaction that inserts
the batch's ``usage_records`` rows, with the same (already bounded) rows, so a call is
added to its day exactly once, together with its row and its monthly summary. One
upsert per (day, key, team, model, provider, probe) of the batch (the calls of
``llmrelay probe`` are summed apart, so reports may leave them out), in sorted order (two
instances' batches cannot deadlock), each sum capped at the 64-bit maximum.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from llmrelay.store.bounds import INT64, clean_int, clean_text
from llmrelay.store.schema import DailyUsage

_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "cache_hits", "errors")
_GROUP_LIMITS = {"api_key_id": 36, "team_id": 36, "model": 300, "provider": 200}


def daily_groups(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, int]]:
    """The batch's usage rows added up per (day, key, team, model, provider, probe)."""
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        key = (
            row["created_at"].date(),
            *(clean_text(row.get(c) or "", n) for c, n in _GROUP_LIMITS.items()),
            bool(row.get("probe")),
        )
        sums = groups.setdefault(key, dict.fromkeys(_SUMS, 0))
        sums["requests"] += 1
        sums["prompt_tokens"] += row["prompt_tokens"]
        sums["completion_tokens"] += row["completion_tokens"]
        sums["cost_nanos"] += row["cost_nanos"]
        sums["cache_hits"] += 1 if row["cache_hit"] else 0
        sums["errors"] += 1 if row["status_code"] >= 400 else 0
    return groups


async def write_daily(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    now: Any,
    insert: Any,
    add: Any,
) -> None:
    """Upsert the batch's daily sums; ``insert`` and ``add`` are the writer's dialect
    insert and saturating sum (shared with the monthly summary)."""
    table: sa.Table = DailyUsage.__table__  # type: ignore[assignment]
    groups = daily_groups(rows)
    for key in sorted(groups):
        day, key_id, team_id, model, provider, probe = key
        sums = {c: clean_int(v, INT64) for c, v in groups[key].items()}
        stmt = insert(conn.dialect.name, table).values(
            day=day,
            api_key_id=key_id,
            team_id=team_id,
            model=model,
            provider=provider,
            probe=probe,
            updated_at=now,
            **sums,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "api_key_id", "team_id", "model", "provider", "probe"],
            set_={
                **{c: add(conn, table.c[c], stmt.excluded[c]) for c in _SUMS},
                "updated_at": now,
            },
        )
        await conn.execute(stmt)
