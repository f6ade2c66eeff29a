"""Reservation estimates per model, and the budget watch of a running stream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import pytest

from llmrelay.errors import BudgetExceeded
from llmrelay.governance.backend import Plan
from llmrelay.governance.budgets import Budget, month_period
from llmrelay.governance.local import LocalBackend
from llmrelay.governance.pricing import Price
from llmrelay.governance.reservation import BudgetWatch, OutputEstimates
from llmrelay.providers.base import StreamTranslator, Usage

PRICE = Price(input=Decimal("0.000001"), output=Decimal("0.000002"))


def test_configured_estimate_wins_then_learnt_then_default() -> None:
    est = OutputEstimates(1024, {"gpt-4o": 300, "up/small-*": 50}, learn=True)
    assert est.allowance(["gpt-4o", "up/gpt-4o"], "up/gpt-4o") == 300
    assert est.allowance(["alias", "up/small-1"], "up/small-1") == 50
    assert est.allowance(["other", "up/other"], "up/other") == 1024
    for tokens in range(1, 20):
        est.record("up/other", tokens)
    assert est.allowance(["up/other"], "up/other") == 1024  # 19 samples: not trusted yet
    est.record("up/other", 20)
    assert est.allowance(["up/other"], "up/other") == 19  # 95th percentile of 1..20
    for _ in range(200):  # the window follows the model: its answers got longer
        est.record("up/other", 400)
    assert est.allowance(["up/other"], "up/other") == 400
    est.record("up/small-1", 5000)
    assert est.allowance(["up/small-1"], "up/small-1") == 50  # configuration still wins


def test_learning_can_be_switched_off() -> None:
    est = OutputEstimates(256, {}, learn=False)
    for _ in range(50):
        est.record("up/m", 3)
    assert est.allowance(["up/m"], "up/m") == 256


class _Stream:
    """The two things the watch reads off a stream translator."""

    def __init__(self) -> None:
        self.content_chars = 0
        self.usage: Usage | None = None


async def _spent(budget: Budget) -> int:
    return 0


async def test_watch_raises_the_reservation_step_by_step_then_stops_at_the_budget() -> None:
    period, ends = month_period(datetime.now(UTC))
    budget = Budget("key", "k", "monthly", period, ends, 100_000, "key 'k'")
    backend = LocalBackend(_spent)
    # Prompt 4 tokens + 20 output tokens = 44,000 nano-dollars reserved.
    plan = Plan(uuid.uuid4().hex, budgets=[budget], cost=44_000, prompt_tokens=4)
    assert (await backend.admit(plan)).admitted
    watch = BudgetWatch(backend, plan, PRICE, 4)
    stream = cast(StreamTranslator, _Stream())
    stream.content_chars = 80  # 20 tokens: exactly what was reserved
    assert not watch.over(stream)
    stream.content_chars = 84
    assert watch.over(stream)
    await watch.extend(stream)
    assert plan.cost == 4_000 + 21 * 2_000 + 44_000  # running cost + one step
    assert not watch.over(stream)
    stream.usage = Usage(completion_tokens=60)  # a usage report counts as well
    assert watch.over(stream)
    await watch.extend(stream)  # 0 + 90,000 < 100,000: granted
    assert plan.cost == 4_000 + 60 * 2_000 + 44_000
    stream.usage = Usage(completion_tokens=100)
    with pytest.raises(BudgetExceeded, match="monthly budget exceeded: key 'k'"):
        await watch.extend(stream)  # 168,000 >= 100,000: no room


def test_reserve_settings_are_checked_and_named() -> None:
    from llmrelay.config import ConfigError, load_settings

    s = load_settings(
        env={}, overrides={"reserve_output_tokens": {"gpt-4o*": 400}, "reserve_learn": False}
    )
    assert s.reserve_output_tokens == {"gpt-4o*": 400} and s.reserve_learn is False
    with pytest.raises(ConfigError, match=r"reserve_output_tokens\.up/m: 0 must be positive"):
        load_settings(env={}, overrides={"reserve_output_tokens": {"up/m": 0}})
