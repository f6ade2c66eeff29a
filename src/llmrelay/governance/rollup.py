"""The daily usage rollup (``usage_daily``), added to with each batch of usage rows.

Made by :func:`~llmrelay.governance.usage.write_usage` for the transaction that inserts
the batch's ``usage_records`` rows, from the same (already bounded) rows, so a call is
added to its day exactly once, together with its row and its monthly summary. One
upsert row per (day, key, team, model, provider, probe) of the batch, all in one
executemany (the calls of ``llmrelay probe`` are summed apart, so reports may leave them
out), in sorted order (two instances' batches cannot deadlock), each sum capped at the
64-bit maximum.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from llmrelay.store.bounds import INT64, clean_int, clean_text

#: The daily columns summed (in the order of :class:`DailySums`' lists).
DAILY_SUMS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
    "cache_hits",
    "errors",
)


#: The columns of the daily upsert's rows (:meth:`DailySums.rows`), in order.
DAILY_COLUMNS = (
    "day",
    "api_key_id",
    "team_id",
    "model",
    "provider",
    "probe",
    *DAILY_SUMS,
    "updated_at",
)


class DailySums:
    """The batch's usage rows added up per (day, key, team, model, provider, probe)."""

    __slots__ = ("groups",)

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
        sums: list[int],
    ) -> None:
        """Add a group of rows: ``sums`` is ``[requests, prompt tokens, completion tokens,
        total tokens, cost, cache hits, errors, ...]`` (the writer's group sums)."""
        key = (
            day,
            clean_text(key_id or "", 36),
            clean_text(team_id or "", 36),
            clean_text(model or "", 300),
            clean_text(provider or "", 200),
            probe,
        )
        have = self.groups.get(key)
        if have is None:
            have = self.groups[key] = [0] * len(DAILY_SUMS)
        have[0] += sums[0]
        have[1] += sums[1]
        have[2] += sums[2]
        have[3] += sums[4]
        have[4] += sums[5]
        have[5] += sums[6]

    def rows(self, now: Any) -> list[tuple[Any, ...]]:
        """The upsert's rows (:data:`DAILY_COLUMNS`), sums capped at 64 bits, sorted (two
        instances' batches cannot deadlock)."""
        groups = self.groups
        return [(*key, *(clean_int(v, INT64) for v in groups[key]), now) for key in sorted(groups)]
