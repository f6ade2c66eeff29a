"""Budgets: calendar periods in UTC, and reserve-then-settle accounting.

A budget caps what a key or a team spends per calendar month (and optionally per
UTC day); it resets at the boundary because spend is counted per period name
(``2026-11``, ``2026-11-23``), never decremented.

Budgets hold under concurrency by reserving before the call: a call is admitted while
``spent + reserved`` is below the budget, and then reserves its estimated cost (its
prompt estimate plus ``max_tokens``, or a default, at the model's prices). When it
ends the reservation is released and the exact cost is added to ``spent``. Many
concurrent calls against a nearly spent budget therefore overshoot it by at most the
cost of the one call admitted last (exactly so when estimates are upper bounds, as
``max_tokens`` is).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from llmrelay.governance.pricing import format_usd

PeriodKind = Literal["monthly", "daily"]


def month_period(now: datetime) -> tuple[str, datetime]:
    """``("2026-11", start of December UTC)``."""
    now = now.astimezone(UTC)
    return _month(now.year, now.month)


def day_period(now: datetime) -> tuple[str, datetime]:
    """``("2026-11-23", start of the next day UTC)``."""
    now = now.astimezone(UTC)
    return _day(now.year, now.month, now.day)


# Every request asks; the answer changes once a day. (Cached: formatting cost ~9 us.)
@functools.lru_cache(maxsize=64)
def _month(year: int, month: int) -> tuple[str, datetime]:
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if month == 12
        else datetime(year, month + 1, 1, tzinfo=UTC)
    )
    return f"{year:04d}-{month:02d}", end


@functools.lru_cache(maxsize=64)
def _day(year: int, month: int, day: int) -> tuple[str, datetime]:
    start = datetime(year, month, day, tzinfo=UTC)
    return f"{year:04d}-{month:02d}-{day:02d}", start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget that applies to a call, for the period the call starts in."""

    scope: str  # "key" | "team"
    scope_id: str
    kind: PeriodKind
    period: str
    #: When the period ends (the budget resets), UTC.
    ends: datetime
    limit_nanos: int
    owner: str

    @property
    def id(self) -> str:
        return f"{self.scope}:{self.scope_id}:{self.period}"

    def message(self) -> str:
        """``monthly budget exceeded: key 'ci' has used its $10.000000000 for 2026-11 ...``."""
        return (
            f"{self.kind} budget exceeded: {self.owner} has used its "
            f"${format_usd(self.limit_nanos)} budget for {self.period} "
            f"(resets {self.ends.strftime('%Y-%m-%dT%H:%M:%SZ')})"
        )


@dataclass(frozen=True, slots=True)
class BudgetState:
    budget: Budget
    spent: int
    reserved: int

    @property
    def exhausted(self) -> bool:
        return self.spent + self.reserved >= self.budget.limit_nanos
