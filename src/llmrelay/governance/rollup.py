"""The daily usage rollup (``usage_daily``), added to with each batch of usage rows.

Called by :func:`~llmrelay.governance.usage.write_usage` in the transaction that inserts
the batch's ``usage_records`` rows, with the same (already bounded) rows, so a call is
added to its day exactly once, together with its row and its monthly summary. One
upsert row per (day, key, team, model, provider, probe) of the batch, all in one
executemany (the calls of
``llmrelay probe`` are summed apart, so reports may leave them out), in sorted order (two
instances' batches cannot deadlock), each sum capped at the 64-bit maximum.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from llmrelay.store.bounds import INT64, clean_int, clean_text
from llmrelay.store.database import Connection

#: The daily columns summed (in the order of :class:`DailySums`' lists).
DAILY_SUMS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
    "cache_hits",
    "errors",
)


class DailySums:
    """The batch's usage rows added up per (day, key, team, model, provider, probe)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], list[int]] = {}

    def add(
        self,
        day: date,
        key_id: str | None,
        team_id: str | None,
        model: str | None,
        provider: str | None,
        probe: bool,
        prompt_tokens: int,
        completion_tokens: int,
        cost_nanos: int,
        cache_hit: bool,
        error: bool,
    ) -> None:
        key = (
            day,
            clean_text(key_id or "", 36),
            clean_text(team_id or "", 36),
            clean_text(model or "", 300),
            clean_text(provider or "", 200),
            probe,
        )
        sums = self.groups.get(key)
        if sums is None:
            sums = self.groups[key] = [0] * len(DAILY_SUMS)
        sums[0] += 1
        sums[1] += prompt_tokens
        sums[2] += completion_tokens
        sums[3] += cost_nanos
        sums[4] += cache_hit
        sums[5] += error


async def write_daily(conn: Connection, daily: DailySums, now: Any, upsert: Any) -> None:
    """Upsert the batch's daily sums in one executemany of ``upsert`` (the writer's
    statement for this dialect, each sum capped like the monthly summary's)."""
    if not daily.groups:
        return
    groups = daily.groups
    params = []
    for key in sorted(groups):
        day, key_id, team_id, model, provider, probe = key
        params.append(
            {
                "day": day,
                "api_key_id": key_id,
                "team_id": team_id,
                "model": model,
                "provider": provider,
                "probe": probe,
                "updated_at": now,
                **{c: clean_int(v, INT64) for c, v in zip(DAILY_SUMS, groups[key], strict=True)},
            }
        )
    await conn.execute(upsert, params)
