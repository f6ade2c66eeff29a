"""What a call reserves against its budget, and what happens when it needs more.

A budget holds under concurrency because every call reserves its estimated cost before
it runs (:mod:`.budgets`). The estimate of the output is the weak part: a call's own
``max_tokens`` is an upper bound, but without one the gateway used to reserve
``default_max_tokens`` (1024) for every call, so a small budget admitted one call where
it could pay for dozens; and an upstream that ignores ``max_tokens`` made the bound a
guess, overshot 7x in a measurement. Two pieces fix that:

* :class:`OutputEstimates`: for calls without ``max_tokens``, the completion tokens to
  reserve per model: the configured ``reserve_output_tokens`` entry, else the 95th
  percentile of that model's recent completions (learnt, on by default), else
  ``default_max_tokens``.
* :class:`BudgetWatch`: a stream whose running cost (its usage, or the content it
  delivered at ~4 characters a token) outgrows its reservation asks the backend to
  raise it by one more step (its first reservation); when a budget has no room left for
  that, the stream is stopped with a ``budget_exceeded`` error event and the upstream
  is closed. The check per relayed batch is two integer comparisons; the backend is
  asked only when a reservation is crossed.

The bound that follows: a raise is granted while ``spent + reserved`` is below the
budget and sets the reservation to the running cost plus one step, and the running
cost is seen once per upstream read; so a budget's spend ends at most one step (the
first reservation of the call raised last) plus two reads per running stream above it.
A non-streamed answer cannot be cut: one that costs more than its reservation (an
upstream ignoring ``max_tokens``) is charged in full, and later calls get 402.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Protocol

from llmrelay.errors import BudgetExceeded, ServiceUnavailable
from llmrelay.governance.estimate import CHARS_PER_TOKEN
from llmrelay.governance.pricing import NANOS_PER_USD, Price, cost_nanos
from llmrelay.providers.base import Usage

if TYPE_CHECKING:
    from llmrelay.governance.backend import Backend, Plan

#: Completions remembered per model, and how many are needed before the percentile is
#: trusted over the default.
_SAMPLES = 200
_MIN_SAMPLES = 20
_PERCENTILE = 0.95
#: Models with learnt estimates (bounded: model names come from the configuration and
#: the providers' lists, but a cap costs nothing).
_MAX_MODELS = 4096


class Progress(Protocol):
    """What a running stream has produced so far (the call keeps it up to date)."""

    usage: Usage | None
    content_chars: int


class OutputEstimates:
    """Completion tokens a call without ``max_tokens`` reserves, per model."""

    def __init__(self, default: int, per_model: Mapping[str, int], learn: bool) -> None:
        self.default = default
        self._exact = {k: v for k, v in per_model.items() if not _is_glob(k)}
        self._globs = [(k, v) for k, v in per_model.items() if _is_glob(k)]
        self._learn = learn
        self._samples: dict[str, deque[int]] = {}
        self._learnt: dict[str, int] = {}
        self._configured: dict[str, int | None] = {}

    def allowance(self, names: Iterable[str], model: str | None) -> int:
        """For a call asking for ``names`` (requested model, target) that lands on
        ``model`` (``provider/model``, None while unknown)."""
        for name in names:
            configured = self._configured_for(name)
            if configured is not None:
                return configured
        if model is not None:
            learnt = self._learnt.get(model)
            if learnt is not None:
                return learnt
        return self.default

    def _configured_for(self, name: str) -> int | None:
        if name in self._configured:
            return self._configured[name]
        value = self._exact.get(name)
        if value is None:
            value = next((v for pattern, v in self._globs if fnmatchcase(name, pattern)), None)
        if len(self._configured) < _MAX_MODELS:
            self._configured[name] = value
        return value

    def record(self, model: str, completion_tokens: int) -> None:
        """One finished call without ``max_tokens`` on ``model`` produced this many."""
        if not self._learn:
            return
        samples = self._samples.get(model)
        if samples is None:
            if len(self._samples) >= _MAX_MODELS:
                return
            samples = self._samples[model] = deque(maxlen=_SAMPLES)
        samples.append(max(0, completion_tokens))
        count = len(samples)
        # Re-sorting 200 ints costs ~10 us; doing it every 10th call keeps it off the
        # hot path while following a model whose answers get longer within ~10 calls.
        if count == _MIN_SAMPLES or (count > _MIN_SAMPLES and count % 10 == 0):
            ordered = sorted(samples)
            self._learnt[model] = max(
                1, ordered[min(count - 1, math.ceil(_PERCENTILE * count) - 1)]
            )

    def learnt(self, model: str) -> int | None:
        return self._learnt.get(model)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class BudgetWatch:
    """Keeps a running stream within its budget reservation (see the module docstring)."""

    __slots__ = ("_backend", "_chars", "_plan", "_price", "_prompt", "_step", "_tokens")

    def __init__(self, backend: Backend, plan: Plan, price: Price, prompt_tokens: int) -> None:
        self._backend = backend
        self._plan = plan
        self._price = price
        self._prompt = prompt_tokens
        #: Each raise adds the call's first reservation: the bound the docs state.
        self._step = max(1, plan.cost)
        self._tokens = self._chars = 0
        self._set_limits()

    def _set_limits(self) -> None:
        """Completion tokens (and characters) the current reservation pays for."""
        prompt_cost = cost_nanos(Usage(prompt_tokens=self._prompt), self._price)
        per_token = self._price.output * NANOS_PER_USD
        room = Decimal(max(0, self._plan.cost - prompt_cost))
        self._tokens = int(room / per_token) if per_token > 0 else 2**62
        self._chars = self._tokens * CHARS_PER_TOKEN

    def over(self, translator: Progress) -> bool:
        """Whether the stream's output so far costs more than its reservation."""
        if translator.content_chars > self._chars:
            return True
        usage = translator.usage
        return usage is not None and usage.completion_tokens > self._tokens

    async def extend(self, translator: Progress) -> None:
        """Reserve one more step beyond the running cost, or raise :class:`BudgetExceeded`."""
        usage = translator.usage
        completion = max(
            usage.completion_tokens if usage is not None else 0,
            -(-translator.content_chars // CHARS_PER_TOKEN),
        )
        running = cost_nanos(
            Usage(prompt_tokens=self._prompt, completion_tokens=completion), self._price
        )
        try:
            refused = await self._backend.extend(self._plan, running + self._step)
        except ServiceUnavailable as exc:  # redis_fail_mode: closed, and Redis is away
            raise BudgetExceeded(
                f"the stream was stopped at its budget reservation: {exc.message}"
            ) from exc
        if refused is not None:
            raise BudgetExceeded(f"{refused.message()}; the stream was stopped there")
        self._set_limits()
