"""The governance stage of the pipeline: admit a call before it runs, settle it after.

``admit`` builds the call's plan (its key's, key+model's and team's rate limits and
budgets), asks the backend to check and record all of it atomically, and refuses with
429 ``rate limit exceeded`` or 402 ``monthly budget exceeded`` naming the limit or
budget that was hit. ``settle`` runs in the pipeline's ``finally`` for every admitted
call, also after errors and disconnects: it prices the usage exactly, estimates usage
for a stream cut before the provider reported it (what was delivered), releases the
reservations and records the spend. What a call reserves, and how a stream that
outgrows it is kept within its budget, is :mod:`.reservation`. Usage rows are written
by the batch writer (:mod:`.usage`); nothing here waits on the database after the first
sight of a budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.errors import BudgetExceeded, RateLimited
from llmrelay.governance import estimate
from llmrelay.governance.backend import Admission, Backend, Outcome, Plan
from llmrelay.governance.budgets import Budget, BudgetState, day_period, month_period
from llmrelay.governance.limits import HOUR, MINUTE, Kind, Limit, format_reset
from llmrelay.governance.pricing import Price, PriceBook, cost_nanos, usd_to_nanos
from llmrelay.governance.reservation import BudgetWatch, OutputEstimates
from llmrelay.providers.base import Usage

if TYPE_CHECKING:
    from llmrelay.config import Settings
    from llmrelay.context import Call
    from llmrelay.governance.key_records import KeyRecord
    from llmrelay.routing.resolve import Target

log = logging.getLogger("llmrelay.governance")

#: (field in a limits mapping, kind, window) for rpm / rph / tpm.
_LIMIT_FIELDS: tuple[tuple[str, Kind, float], ...] = (
    ("rpm", "requests", MINUTE),
    ("rph", "requests", HOUR),
    ("tpm", "tokens", MINUTE),
)


def _nanos(amount: Decimal | float | int) -> int:
    return usd_to_nanos(amount if isinstance(amount, Decimal) else Decimal(str(amount)))


class Governor:
    def __init__(self, settings: Settings, backend: Backend, prices: PriceBook) -> None:
        self.settings = settings
        self.backend = backend
        self.prices = prices
        self._unpriced: set[str] = set()
        #: Told each admitted call's budget states (the remaining-budget gauge); set only
        #: with ``metrics_key_labels``, so by default admission does no metrics work.
        self.budget_observer: Callable[[list[BudgetState]], None] | None = None
        self.outputs = OutputEstimates(
            settings.default_max_tokens, settings.reserve_output_tokens, settings.reserve_learn
        )

    # -- plan -----------------------------------------------------------------------
    def plan(self, call: Call) -> Plan:
        """Every limit and budget that applies to this call, and what it reserves."""
        key = call.key
        assert key is not None and call.body is not None
        plan = Plan(call.id, self._limits(call, key), self._budgets(call, key))
        if plan.empty:
            return plan
        prompt = estimate.prompt_tokens(call.body)
        targets = self._candidates(call)
        cap = 0 if "embeddings" in call.route else estimate.output_cap(call.body)
        if cap is not None:
            allowances = [cap] * len(targets)
        else:
            names = [call.model] if call.model else []
            allowances = [
                self.outputs.allowance([*names, t.qualified], t.qualified) for t in targets
            ]
        completion = max(allowances, default=self.outputs.default if cap is None else cap)
        plan.tokens = max(1, prompt + completion)
        plan.prompt_tokens = prompt
        if plan.budgets:
            costs = []
            for target, allowance in zip(targets, allowances, strict=True):
                price = self.price_of(target)
                if price is not None:
                    costs.append(
                        cost_nanos(Usage(prompt_tokens=prompt, completion_tokens=allowance), price)
                    )
            plan.cost = max(costs, default=0)
        return plan

    def _limits(self, call: Call, key: KeyRecord) -> list[Limit]:
        s = self.settings
        if not s.limits_enabled:
            return []
        out: list[Limit] = []
        rpm = s.default_rpm if key.rate_limit is None else key.rate_limit
        rph = s.default_rph if key.rph_limit is None else key.rph_limit
        tpm = s.default_tpm if key.tpm_limit is None else key.tpm_limit
        if rpm is not None or rph is not None or tpm is not None:
            own = {"rpm": rpm, "rph": rph, "tpm": tpm}
            self._add(out, "key", key.id, own, f"key '{key.name}'")
        if key.model_limits:
            names = [call.model or ""] + ([call.target.qualified] if call.target else [])
            for pattern, spec in key.model_limits.items():
                if isinstance(spec, dict) and any(fnmatchcase(n, pattern) for n in names):
                    self._add(
                        out,
                        "key+model",
                        f"{key.id}:{pattern}",
                        spec,
                        f"key '{key.name}' for models {pattern!r}",
                    )
        team = key.team
        if team is not None:
            self._add(
                out,
                "team",
                team.id,
                {"rpm": team.rate_limit, "rph": team.rph_limit, "tpm": team.tpm_limit},
                f"team '{team.name}'",
            )
        return out

    @staticmethod
    def _add(
        out: list[Limit], scope: str, scope_id: str, values: dict[str, Any], owner: str
    ) -> None:
        for name, kind, window in _LIMIT_FIELDS:
            value = values.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                out.append(Limit(scope, scope_id, kind, value, window, owner))

    def _budgets(self, call: Call, key: KeyRecord) -> list[Budget]:
        team = key.team
        if (
            key.monthly_budget is None
            and key.daily_budget is None
            and (team is None or (team.monthly_budget is None and team.daily_budget is None))
        ):
            return []
        month, month_end = month_period(call.created_at.astimezone(UTC))
        day, day_end = day_period(call.created_at.astimezone(UTC))
        owners: list[tuple[str, str, str, Any, Any]] = [
            ("key", key.id, f"key '{key.name}'", key.monthly_budget, key.daily_budget)
        ]
        if key.team is not None:
            t = key.team
            owners.append(("team", t.id, f"team '{t.name}'", t.monthly_budget, t.daily_budget))
        out: list[Budget] = []
        for scope, scope_id, owner, monthly, daily in owners:
            if monthly is not None:
                out.append(
                    Budget(scope, scope_id, "monthly", month, month_end, _nanos(monthly), owner)
                )
            if daily is not None:
                out.append(Budget(scope, scope_id, "daily", day, day_end, _nanos(daily), owner))
        return out

    @staticmethod
    def _candidates(call: Call) -> list[Target]:
        """The targets the call may land on (a route plan has several)."""
        if call.target is not None:
            return [call.target]
        if call.plan is not None:
            return [leaf.target for leaf in call.plan.root.leaves()]
        return []

    def price_of(self, target: Target) -> Price | None:
        p = target.provider
        price = self.prices.lookup(p.name, p.spec.type, target.model)
        if price is None and p.spec.type != "mock" and target.qualified not in self._unpriced:
            self._unpriced.add(target.qualified)
            log.warning(
                "no price for %s: its calls cost 0 and budgets do not see them; add "
                "it under prices: in the config or run `llmrelay catalog sync`",
                target.qualified,
            )
        return price

    # -- admit ----------------------------------------------------------------------
    async def admit(self, call: Call) -> None:
        """Raise 429/402 if a limit or budget refuses the call; else hold its reservation."""
        plan = self.plan(call)
        if plan.empty:
            return
        admission = await self.backend.admit(plan)
        call.ticket = plan  # settle even when unchecked: spend made in an outage counts
        if admission.unchecked:
            return
        headers = ratelimit_headers(plan, admission)
        if self.budget_observer is not None and admission.budgets:
            self.budget_observer(admission.budgets)
        rejected = admission.rejected
        if rejected is None:
            call.extra_headers.update(headers)
            return
        call.ticket = None  # nothing was recorded: nothing to settle
        if isinstance(rejected, Budget):
            raise BudgetExceeded(rejected.message(), headers=headers)
        wait = max(1, math.ceil(admission.retry_after))
        headers["retry-after"] = str(wait)
        headers["retry-after-ms"] = str(max(1, math.ceil(admission.retry_after * 1000)))
        raise RateLimited(
            f"rate limit exceeded: {rejected.describe()}; retry in {wait}s", headers=headers
        )

    # -- streams --------------------------------------------------------------------
    def stream_watch(self, call: Call) -> BudgetWatch | None:
        """The budget guard of a stream, or None when no budget applies (checked once)."""
        plan = call.ticket
        if plan is None or not plan.budgets or plan.cost <= 0 or call.target is None:
            return None
        price = self.price_of(call.target)
        if price is None:
            return None
        return BudgetWatch(self.backend, plan, price, plan.prompt_tokens)

    # -- settle ---------------------------------------------------------------------
    def cost_of(self, call: Call) -> int | None:
        """The call's exact cost in nano-dollars (memoised on the call)."""
        if call.cost_nanos is None and call.usage is not None and call.target is not None:
            price = self.price_of(call.target)
            if price is not None:
                call.cost_nanos = cost_nanos(call.usage, price)
        return call.cost_nanos

    def _estimate_usage(self, call: Call) -> None:
        """Usage of a call that delivered output but got no usage report: count it."""
        assert call.body is not None
        chars = call.content_chars
        if not call.stream and call.response_body:
            try:
                parsed = orjson.loads(call.response_body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                found = (parsed.get(k) for k in ("choices", "content", "output"))
                answer = next((v for v in found if v is not None), None)
                chars = estimate.text_chars(answer)
        prompt = estimate.prompt_tokens(call.body)
        completion = estimate.tokens_for_chars(chars)
        call.usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        call.usage_estimated = True

    async def settle(self, call: Call) -> None:
        """Price the call and release its reservation; runs in ``finally``, never raises."""
        try:
            # A cache hit costs nothing (``cost_nanos`` is 0) but counts against rate
            # limits, requests and tokens alike, like an upstream answer would.
            hit = call.cache is not None and call.cache.hit
            reached = call.attempt_count > 0 or hit
            if reached and call.usage is None and call.bytes_out > 0 and call.body is not None:
                self._estimate_usage(call)
            cost = self.cost_of(call) if reached else None
            usage = call.usage
            # Every uncapped completion teaches the estimate (a few dict operations;
            # the percentile is re-sorted every 10th call), governed by a budget or not.
            if (
                reached
                and not hit
                and usage is not None
                and not call.usage_estimated
                and call.target is not None
                and call.body is not None
                and "embeddings" not in call.route
                and estimate.output_cap(call.body) is None
            ):
                self.outputs.record(call.target.qualified, usage.completion_tokens)
            plan, call.ticket = call.ticket, None
            if plan is None:
                return
            tokens = (
                (usage.total_tokens or usage.prompt_tokens + usage.completion_tokens)
                if usage is not None
                else 0
            )
            await self.backend.settle(plan, Outcome(tokens, cost or 0, reached))
        except Exception:
            log.exception("settling call %s failed", call.id)

    async def close(self) -> None:
        await self.backend.close()

    def status(self) -> dict[str, object]:
        return self.backend.status()


def ratelimit_headers(plan: Plan, admission: Admission) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers from the binding request and token limits.

    ``limit``/``remaining`` describe the limit with the least room left (the one that
    refused the call, on a 429); ``reset`` is when its oldest counted call leaves the
    window, i.e. when ``remaining`` next grows.
    """
    out: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        states = [s for s in admission.windows if s.limit.kind == kind]
        if not states:
            continue
        amount = (1 if kind == "requests" else plan.tokens) if admission.admitted else 0
        hit = [s for s in states if s.limit is admission.rejected]
        chosen = hit[0] if hit else min(states, key=lambda s: (s.remaining(amount), s.limit.limit))
        remaining = 0 if hit else chosen.remaining(amount)
        reset = chosen.reset
        if admission.admitted and reset <= 0:
            reset = chosen.limit.window  # this call is now the oldest entry
        out[f"x-ratelimit-limit-{kind}"] = str(chosen.limit.limit)
        out[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        out[f"x-ratelimit-reset-{kind}"] = format_reset(reset)
    return out
