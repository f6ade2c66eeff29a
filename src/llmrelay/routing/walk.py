"""One request's walk through its route plan: strategies, retries, circuits.

The rules (what a fallback moves on for, when a retry is given up, how a target that
cannot serve the call is passed over) are in :mod:`llmrelay.routing.router`'s
docstring; one try at one target is :func:`llmrelay.routing.attempt.attempt`. The
:class:`~llmrelay.routing.router.Router` starts one :class:`Walk` per request.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmrelay.errors import (
    CapabilityMissing,
    CircuitOpen,
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    UpstreamError,
)
from llmrelay.providers.base import UpstreamCall
from llmrelay.routing.attempt import (
    ParseAnswer,
    attempt,
    record_skip,
    record_unsupported,
)
from llmrelay.routing.conditions import RequestFacts, choose
from llmrelay.routing.plan import Group, Leaf, RoutePlan
from llmrelay.routing.resolve import Target
from llmrelay.routing.retry import decide
from llmrelay.routing.selection import request_facts
from llmrelay.upstream import UpstreamResponse

if TYPE_CHECKING:
    from llmrelay.context import Call
    from llmrelay.routing.router import Router

BuildCall = Callable[[Target], UpstreamCall]


class Walk:
    """The state of one request's walk through its plan."""

    def __init__(
        self,
        router: Router,
        call: Call,
        build: BuildCall,
        stream: bool,
        plan: RoutePlan,
        parse: ParseAnswer | None = None,
    ) -> None:
        self.router = router
        self.call = call
        self.build = build
        self.stream = stream
        self.plan = plan
        self.parse = parse
        self.deadline: float | None = None
        #: llmrelay retried, or stopped retrying by its own policy.
        self.spent = False
        self._facts: RequestFacts | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def client_should_not_retry(self, exc: GatewayError) -> bool:
        """Tell the SDK not to add its own retries on top of ours (or to pointless ones)."""
        if self.spent or self.call.attempt_count > 1:
            return True
        return not exc.retry_may_help

    async def node(self, node: Leaf | Group) -> tuple[UpstreamResponse, Leaf]:
        seconds = node.spec.deadline
        if seconds is None:
            return await (self.leaf(node) if isinstance(node, Leaf) else self.group(node))
        saved = self.deadline
        mine = time.perf_counter() + seconds
        self.deadline = mine if saved is None else min(saved, mine)
        try:
            return await (self.leaf(node) if isinstance(node, Leaf) else self.group(node))
        finally:
            self.deadline = saved

    async def group(self, group: Group) -> tuple[UpstreamResponse, Leaf]:
        strategy = group.spec.strategy
        if strategy == "single":
            return await self.node(group.children[0])
        if strategy == "conditional":
            return await self.node(self._conditional(group))
        if strategy == "loadbalance":
            return await self._loadbalance(group)
        return await self._fallback(group)

    async def _fallback(self, group: Group) -> tuple[UpstreamResponse, Leaf]:
        """The first child that answers; when none does, the most telling failure.

        That is the last failure of a target that could serve the call, else an open
        circuit (the call can be served later), else a missing capability.
        """
        last: UpstreamError | None = None
        skipped: CircuitOpen | None = None
        missing: CapabilityMissing | None = None
        for child in group.children:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                raise last or DeadlineExceeded(
                    "the route's deadline ran out before any target answered"
                )
            try:
                return await self.node(child)
            except CircuitOpen as exc:
                skipped = exc
            except UpstreamError as exc:
                if not (exc.fallback_may_help and child.spec.on_errors.matches(exc)):
                    raise
                if isinstance(exc, CapabilityMissing):
                    missing = exc
                else:
                    last = exc
        error = last or skipped or missing
        assert error is not None
        raise error

    async def _loadbalance(self, group: Group) -> tuple[UpstreamResponse, Leaf]:
        """One child drawn by weight; one that cannot be used now (its circuit is open)
        or at all (its family lacks the capability) is drawn around, not returned."""
        pool = [c for c in group.children if c.spec.weight > 0]
        skipped: CircuitOpen | None = None
        missing: CapabilityMissing | None = None
        while pool:
            index = pick_weighted([c.spec.weight for c in pool], self.router.rng)
            child = pool[index]
            try:
                return await self.node(child)
            except CircuitOpen as exc:  # draw again among the others
                skipped = exc
                del pool[index]
            except CapabilityMissing as exc:
                missing = exc
                del pool[index]
        error = skipped or missing
        assert error is not None
        raise error

    def _conditional(self, group: Group) -> Leaf | Group:
        name = choose(group.spec.conditions, group.spec.default, self.facts())
        if name is None:
            raise InvalidRequest(
                "no condition of the route config matches this request, and "
                "it has no default target",
                code="no_route",
            )
        return next(c for c in group.children if c.spec.name == name)

    def facts(self) -> RequestFacts:
        if self._facts is None:
            self._facts = request_facts(self.call)
        return self._facts

    async def leaf(self, leaf: Leaf) -> tuple[UpstreamResponse, Leaf]:
        router = self.router
        key = leaf.target.breaker_key
        # Built before the circuit is consulted: a target that cannot serve the call is
        # passed over without taking a half-open probe's place (which would then close
        # the circuit without any call having been made).
        ucall: UpstreamCall | None = self._build(leaf.target)
        probe = False
        if self.plan.enforce_breaker:
            verdict = await router.breaker.acquire(key)
            if not verdict.allowed:
                record_skip(self.call, leaf.target, verdict.state)
                raise CircuitOpen(
                    f"target {leaf.target.qualified} is skipped after repeated failures (circuit "
                    f"{verdict.state}); it is probed again in {verdict.retry_in:.1f}s",
                    headers={"retry-after": str(max(1, math.ceil(verdict.retry_in)))},
                )
            probe = verdict.state == "half_open"
        policy = leaf.spec.retry
        waited = 0.0
        failures = 0
        while True:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(
                    f"the route's deadline ran out before {leaf.target.qualified} answered",
                    provider=leaf.target.provider.name,
                )
            if ucall is None:  # each retry is built afresh (signatures, tokens, ...)
                ucall = self._build(leaf.target)
            try:
                resp = await attempt(
                    self.call,
                    leaf,
                    ucall,
                    stream=self.stream,
                    parse=self.parse,
                    redactor=router.redactor,
                    remaining=remaining,
                    waited=waited,
                )
            except UpstreamError as exc:
                ucall = None
                unwell = await router.failed(key, exc, leaf.target)
                if probe and not unwell:  # it answered (a 400 is the request's fault)
                    await router.breaker.success(key)
                    probe = False
                failures += 1
                decision = decide(
                    policy,
                    exc,
                    failures,
                    router.rng,
                    retry_after_cap=router.retry_after_cap,
                    remaining=self.remaining(),
                )
                if decision.why in ("retries_exhausted", "retry_after_too_long", "deadline"):
                    self.spent = True
                if decision.delay is None:
                    raise
                self.spent = True
                waited = decision.delay
                await asyncio.sleep(waited)
                self.call.upstream_seconds += waited
                continue
            # Only a probe's success changes a circuit (closed stays closed), so calls
            # that did not probe skip the round trip to a shared breaker.
            if probe:
                await router.breaker.success(key)
            return resp, leaf

    def _build(self, target: Target) -> UpstreamCall:
        """The upstream call for ``target``; a capability it lacks is recorded as a skip."""
        try:
            return self.build(target)
        except Exception as exc:
            # The answer's headers name the target that could not be asked (a request it
            # cannot take, a capability it lacks).
            self.call.target = target
            if isinstance(exc, CapabilityMissing):
                record_unsupported(self.call, target, exc)
            raise


def pick_weighted(weights: list[float], rng: random.Random) -> int:
    """Index drawn with probability ``weights[i] / sum(weights)`` (zero never drawn)."""
    total = sum(weights)
    x = rng.random() * total
    for i, w in enumerate(weights):
        x -= w
        if x < 0 and w > 0:
            return i
    return max(i for i, w in enumerate(weights) if w > 0)
