"""What a counting backend does: admit a call's plan atomically, settle it afterwards.

Two implementations with the same semantics: :mod:`.local` (in process, the embedded
default) and :mod:`.redis_backend` (shared by every instance). Admission checks every
limit and budget of the plan and records *all or nothing*: a rejected call consumes no
window slot and reserves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from llmrelay.governance.budgets import Budget, BudgetState
from llmrelay.governance.limits import Limit, WindowState


@dataclass(slots=True)
class Plan:
    """What one call must pass: its limits and budgets, and what it reserves."""

    ticket: str
    limits: list[Limit] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    #: Tokens reserved in token windows (prompt estimate + completion allowance).
    tokens: int = 0
    #: Nano-dollars reserved in budgets (raised by ``Backend.extend`` mid-stream).
    cost: int = 0
    #: The prompt estimate inside ``tokens`` (what a running stream's cost starts from).
    prompt_tokens: int = 0

    def amount(self, limit: Limit) -> int:
        return 1 if limit.kind == "requests" else self.tokens

    @property
    def empty(self) -> bool:
        return not self.limits and not self.budgets


@dataclass(slots=True)
class Admission:
    windows: list[WindowState] = field(default_factory=list)
    budgets: list[BudgetState] = field(default_factory=list)
    #: The limit or budget that refused the call (None: admitted).
    rejected: Limit | Budget | None = None
    #: Seconds until a refused call could pass (rate limits only).
    retry_after: float = 0.0
    #: Admitted without counting because the shared backend is unreachable (fail-open).
    unchecked: bool = False

    @property
    def admitted(self) -> bool:
        return self.rejected is None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended, for settling its plan."""

    #: Real tokens used (replaces the token reservation).
    tokens: int
    #: Exact cost in nano-dollars (added to spend; the reservation is released).
    cost: int
    #: Whether a provider was called; if not, the call's request slots are given back.
    reached: bool


#: Reads persisted spend for a budget's period (nano-dollars) from the database.
SpendLoader = Callable[[Budget], Awaitable[int]]


class Backend(Protocol):
    name: str

    async def admit(self, plan: Plan) -> Admission: ...

    async def settle(self, plan: Plan, outcome: Outcome) -> None: ...

    async def extend(self, plan: Plan, cost: int) -> Budget | None:
        """Raise a running call's budget reservation to ``cost`` (``plan.cost`` follows)
        if every budget still has room; else return the budget that has none."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, object]: ...
