"""Sliding-log rate limits and reserve-then-settle budgets, in process, with a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from llmrelay.governance.backend import Outcome, Plan
from llmrelay.governance.budgets import Budget, day_period, month_period
from llmrelay.governance.limits import HOUR, MINUTE, Limit, SlidingLog, format_reset
from llmrelay.governance.local import LocalBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rpm(limit: int, scope_id: str = "k1", scope: str = "key") -> Limit:
    return Limit(scope, scope_id, "requests", limit, MINUTE, f"{scope} '{scope_id}'")


def tpm(limit: int, scope_id: str = "k1") -> Limit:
    return Limit("key", scope_id, "tokens", limit, MINUTE, f"key '{scope_id}'")


def budget(nanos: int, scope_id: str = "k1") -> Budget:
    period, ends = month_period(datetime(2026, 11, 23, tzinfo=UTC))
    return Budget("key", scope_id, "monthly", period, ends, nanos, f"key '{scope_id}'")


async def no_spend(_: Budget) -> int:
    return 0


def backend(clock: Clock, load: object = no_spend) -> LocalBackend:
    return LocalBackend(load, clock=clock)  # type: ignore[arg-type]


_tickets = iter(range(10**9))


def plan(*limits: Limit, budgets: tuple[Budget, ...] = (), tokens: int = 1, cost: int = 0) -> Plan:
    return Plan(f"t{next(_tickets)}", list(limits), list(budgets), tokens=tokens, cost=cost)


async def test_exactly_limit_calls_pass_in_a_window() -> None:
    clock = Clock()
    b = backend(clock)
    results = []
    for _ in range(7):
        results.append((await b.admit(plan(rpm(5)))).admitted)
        clock.now += 1
    assert results == [True] * 5 + [False] * 2


async def test_no_double_burst_at_a_window_edge() -> None:
    """A fixed window would let 5 through at 59.9 s and 5 more at 60.1 s."""
    clock = Clock()
    b = backend(clock)
    clock.now = 1059.9
    assert all([(await b.admit(plan(rpm(5)))).admitted for _ in range(5)])
    clock.now = 1060.1  # a new calendar minute, same sliding minute
    assert not (await b.admit(plan(rpm(5)))).admitted
    clock.now = 1119.9  # the first five are 60 s old: they leave the window
    assert (await b.admit(plan(rpm(5)))).admitted


async def test_retry_after_is_when_the_oldest_call_leaves() -> None:
    clock = Clock()
    b = backend(clock)
    for step in (0, 10, 20):
        clock.now = 1000 + step
        assert (await b.admit(plan(rpm(3)))).admitted
    clock.now = 1025
    refused = await b.admit(plan(rpm(3)))
    assert refused.rejected == rpm(3)
    assert refused.retry_after == pytest.approx(35.0)  # 1000 + 60 - 1025
    assert refused.windows[0].used == 3


async def test_a_refused_call_consumes_nothing_anywhere() -> None:
    """All or nothing: the key limit had room, the team limit did not."""
    clock = Clock()
    b = backend(clock)
    team = rpm(1, "team1", scope="team")
    assert (await b.admit(plan(rpm(10), team))).admitted
    refused = await b.admit(plan(rpm(10), team))
    assert refused.rejected == team
    state = (await b.admit(plan(rpm(10)))).windows[0]
    assert state.used == 1  # only the first call counted on the key


async def test_calls_that_never_reached_a_provider_give_their_slot_back() -> None:
    clock = Clock()
    b = backend(clock)
    p = plan(rpm(1))
    assert (await b.admit(p)).admitted
    await b.settle(p, Outcome(tokens=0, cost=0, reached=False))
    assert (await b.admit(plan(rpm(1)))).admitted


async def test_token_window_reserves_then_settles_to_the_real_count() -> None:
    clock = Clock()
    b = backend(clock)
    first = plan(tpm(1000), tokens=900)
    assert (await b.admit(first)).admitted
    # 900 reserved < 1000: the next call is admitted (below the limit), reserving 900 more.
    second = plan(tpm(1000), tokens=900)
    assert (await b.admit(second)).admitted
    assert not (await b.admit(plan(tpm(1000), tokens=10))).admitted
    await b.settle(first, Outcome(tokens=50, cost=0, reached=True))
    await b.settle(second, Outcome(tokens=60, cost=0, reached=True))
    state = (await b.admit(plan(tpm(1000), tokens=10))).windows[0]
    assert state.used == 110


async def test_hour_window_counts_separately_from_minute() -> None:
    clock = Clock()
    b = backend(clock)
    rph = Limit("key", "k1", "requests", 3, HOUR, "key 'k1'")
    for _ in range(3):
        assert (await b.admit(plan(rpm(100), rph))).admitted
        clock.now += 61  # each minute window is empty again
    refused = await b.admit(plan(rpm(100), rph))
    assert refused.rejected == rph
    assert refused.retry_after == pytest.approx(3600 - 183)


async def test_budget_overshoot_is_at_most_one_call_under_concurrency() -> None:
    """50 concurrent calls against $0.01 left: reservations stop the rush."""
    clock = Clock()

    async def already_spent(_: Budget) -> int:
        await asyncio.sleep(0.01)  # a database round trip, shared by all 50 (single flight)
        return 990_000_000  # $0.99 of $1.00

    b = backend(clock, already_spent)
    cap = budget(1_000_000_000)
    cost = 3_000_000  # each call really costs $0.003 and reserves that much
    plans = [plan(budgets=(cap,), cost=cost) for _ in range(50)]
    admissions = await asyncio.gather(*(b.admit(p) for p in plans))
    admitted = [p for p, a in zip(plans, admissions, strict=True) if a.admitted]
    assert len(admitted) == 4  # 0.990 .993 .996 .999 are below 1.000; then it is used up
    for p in admitted:
        await b.settle(p, Outcome(tokens=10, cost=cost, reached=True))
    spent = 990_000_000 + len(admitted) * cost
    assert 1_000_000_000 <= spent <= 1_000_000_000 + cost
    refused = await b.admit(plan(budgets=(cap,), cost=cost))
    assert refused.rejected == cap
    assert refused.budgets[0].spent == spent and refused.budgets[0].reserved == 0


async def test_budget_spend_starts_from_persisted_spend_once() -> None:
    calls = 0

    async def load(_: Budget) -> int:
        nonlocal calls
        calls += 1
        return 5

    b = backend(Clock(), load)
    cap = budget(100)
    for _ in range(3):
        p = plan(budgets=(cap,), cost=1)
        assert (await b.admit(p)).admitted
        await b.settle(p, Outcome(tokens=1, cost=7, reached=True))
    assert calls == 1
    assert (await b.admit(plan(budgets=(cap,)))).budgets[0].spent == 5 + 21


def test_sliding_log_adjust_and_retry_after() -> None:
    log = SlidingLog(60.0)
    log.add(0.0, "a", 400)
    log.add(10.0, "b", 300)
    log.add(20.0, "c", 300)
    assert log.retry_after(1000, 30.0) == pytest.approx(30.0)  # 1000 used: wait for "a"
    assert log.retry_after(500, 30.0) == pytest.approx(40.0)  # needs "a" and "b" gone
    log.adjust("b", 50)
    assert log.total == 750
    log.adjust("c", 0)
    assert log.total == 450 and len(log.entries) == 2
    log.purge(60.0)
    assert log.total == 50


def test_periods_are_utc_calendar_boundaries() -> None:
    assert month_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        "2026-12",
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert day_period(datetime(2026, 2, 28, 12, tzinfo=UTC)) == (
        "2026-02-28",
        datetime(2026, 3, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (59.9, "59.9s"), (360, "6m0s"), (3725, "1h2m5s")],
)
def test_reset_header_format(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
