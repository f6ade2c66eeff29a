"""The in-process backend: exact limits and budgets for one gateway process.

The event loop runs admission without an ``await`` between check and record, so it is
atomic without locks. Budget spend starts from the database (``spend_counters``, kept by
the batch writer) the first time a key or team is seen in a period, so a restart does
not reset it. Only correct when one process serves the keys: ``--workers N`` without
Redis is refused at start (see ``config``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from llmrelay.governance.backend import Admission, Outcome, Plan, SpendLoader
from llmrelay.governance.budgets import Budget, BudgetState
from llmrelay.governance.limits import Limit, SlidingLog

#: Forget idle windows after this many admissions (bounded memory, no timer task).
_SWEEP_EVERY = 10_000


class LocalBackend:
    name = "local"

    def __init__(
        self, load_spend: SpendLoader, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load_spend = load_spend
        self._clock = clock
        self._logs: dict[str, SlidingLog] = {}
        self._spent: dict[str, int] = {}
        self._ends: dict[str, datetime] = {}
        self._reserved: dict[str, dict[str, int]] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._admissions = 0

    def _log(self, limit: Limit) -> SlidingLog:
        log = self._logs.get(limit.id)
        if log is None or log.window != limit.window:
            log = self._logs[limit.id] = SlidingLog(limit.window)
        return log

    async def _seed(self, budget: Budget) -> None:
        """Load a budget's persisted spend once (single-flight per budget period)."""
        pending = self._seeding.get(budget.id)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seeding[budget.id] = future
        try:
            spent = await self._load_spend(budget)
            self._spent.setdefault(budget.id, spent)
            self._ends[budget.id] = budget.ends
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._seeding[budget.id]

    async def admit(self, plan: Plan) -> Admission:
        for budget in plan.budgets:
            if budget.id not in self._spent:
                await self._seed(budget)
        return self.admit_now(plan)

    def admit_now(self, plan: Plan) -> Admission:
        """Check every limit and budget, then record all of them (no await in between)."""
        now = self._clock()
        windows = [self._log(limit).state(limit, now) for limit in plan.limits]
        budgets = [
            BudgetState(b, self._spent.get(b.id, 0), sum(self._reserved.get(b.id, {}).values()))
            for b in plan.budgets
        ]
        for spend in budgets:
            if spend.exhausted:
                return Admission(windows, budgets, rejected=spend.budget)
        worst: tuple[float, Limit] | None = None
        for state in windows:
            if state.used >= state.limit.limit:
                wait = self._log(state.limit).retry_after(
                    state.limit.limit, now, unit=state.limit.kind == "requests"
                )
                if worst is None or wait > worst[0]:
                    worst = (wait, state.limit)
        if worst is not None:
            return Admission(windows, budgets, rejected=worst[1], retry_after=worst[0])
        for limit in plan.limits:
            self._log(limit).add(now, plan.ticket, plan.amount(limit))
        for budget in plan.budgets:
            self._reserved.setdefault(budget.id, {})[plan.ticket] = plan.cost
        self._admissions += 1
        if self._admissions % _SWEEP_EVERY == 0:
            self._sweep(now)
        return Admission(windows, budgets)

    async def extend(self, plan: Plan, cost: int) -> Budget | None:
        """Raise a running call's reservation to ``cost`` while its budgets have room."""
        for budget in plan.budgets:
            reserved = sum(self._reserved.get(budget.id, {}).values())
            if self._spent.get(budget.id, 0) + reserved >= budget.limit_nanos:
                return budget
        for budget in plan.budgets:
            self._reserved.setdefault(budget.id, {})[plan.ticket] = cost
        plan.cost = cost
        return None

    async def settle(self, plan: Plan, outcome: Outcome) -> None:
        for limit in plan.limits:
            log = self._logs.get(limit.id)
            if log is None:
                continue
            if limit.kind == "tokens":
                log.adjust(plan.ticket, outcome.tokens if outcome.reached else 0)
            elif not outcome.reached:
                log.adjust(plan.ticket, 0)
        for budget in plan.budgets:
            held = self._reserved.get(budget.id)
            if held is not None:
                held.pop(plan.ticket, None)
                if not held:
                    del self._reserved[budget.id]
            if outcome.cost:
                self._spent[budget.id] = self._spent.get(budget.id, 0) + outcome.cost

    def _sweep(self, now: float) -> None:
        for key in [k for k, log in self._logs.items() if log.empty(now)]:
            del self._logs[key]
        # Spend of periods that ended a day ago is in the database; keep memory bounded.
        past = datetime.now(UTC) - timedelta(days=1)
        for key in [k for k, end in self._ends.items() if end < past]:
            del self._ends[key]
            if key not in self._reserved:
                self._spent.pop(key, None)

    async def close(self) -> None:
        return None

    def status(self) -> dict[str, object]:
        return {"backend": self.name, "ok": True, "windows": len(self._logs)}
