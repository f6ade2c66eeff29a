"""The router: walks a request's route plan until a target answers.

A group runs its strategy (single, fallback, loadbalance, conditional); a target is
tried, retried with backoff per its retry policy, and given up on when retries are
spent, the error is not retryable, the upstream asks for a wait beyond the cap, or the
deadline would pass. A fallback moves on only for the errors its target's
``on_errors`` admits; targets whose circuit is open are skipped without a call. Each
try is recorded in ``call.attempts``. Which plan a request gets is decided by
:mod:`llmrelay.routing.selection`.

A target whose provider family cannot serve the call at all (``build`` raises
:class:`~llmrelay.errors.CapabilityMissing`: embeddings on Anthropic, ...) is passed
over before its circuit is consulted: recorded as ``"skipped": "unsupported"`` (no
upstream call, so no ``status``, no breaker failure, no retry), then treated like any
failed target: a fallback moves on when ``on_errors`` admits it (``unsupported``,
``4xx``, ``400``, ``*``), a loadbalance draws again among the others as it does around
an open circuit. When no target can serve the call, the client gets that 400.

Everything happens before the first byte reaches the client: a non-streaming answer is
read in full (and, given a ``parse``, read by the target's adapter) and a stream's first
chunk is read inside the attempt (under the target's ``ttft_timeout``), so a stall, an
empty stream or a 2xx that is not the provider's answer still falls back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmrelay.errors import (
    CapabilityMissing,
    CircuitOpen,
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    UnknownModel,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llmrelay.providers.base import ChatResult, UpstreamCall
from llmrelay.providers.registry import Registry
from llmrelay.redaction import Redactor
from llmrelay.routing.breaker import Breaker
from llmrelay.routing.classify import classes_of, upstream_refusal
from llmrelay.routing.conditions import RequestFacts, choose
from llmrelay.routing.plan import BindError, Group, Leaf, RoutePlan, bind, direct_plan
from llmrelay.routing.resolve import Resolver, Target
from llmrelay.routing.responses import BufferedResponse, PrefetchedStream
from llmrelay.routing.retry import decide
from llmrelay.routing.selection import PlanSelector, request_facts
from llmrelay.routing.store import RouteConfigStore
from llmrelay.telemetry.interaction import redact
from llmrelay.upstream import UpstreamResponse, upstream_request_id

if TYPE_CHECKING:
    from llmrelay.config import Settings
    from llmrelay.context import Call
    from llmrelay.store.database import Connect

log = logging.getLogger("llmrelay")

BuildCall = Callable[[Target], UpstreamCall]
#: The adapter's reading of a target's 2xx body (``chat_response``, ...); raising
#: :class:`UpstreamError` makes the attempt fail like an error status would.
ParseAnswer = Callable[[Target, bytes], ChatResult]

#: What an adapter raises when a body's shape surprises it (a list where an object
#: belongs ...): the upstream's failure, like a body that is not JSON at all.
_SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)

#: Failures that say a target is unwell (a client's own 4xx does not).
_UNWELL = frozenset({"5xx", "timeout", "connection", "rate_limit"})


class Router:
    def __init__(
        self,
        *,
        selector: PlanSelector,
        breaker: Breaker,
        retry_after_cap: float = 60.0,
        rng: random.Random | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.selector = selector
        self.breaker = breaker
        #: Scrubs every upstream failure of configured secrets before it is recorded
        #: or leaves (see :mod:`llmrelay.redaction`).
        self.redactor = redactor or Redactor(())
        self.retry_after_cap = retry_after_cap
        self.rng = rng or random.Random()
        #: Plans of requests without a route config, one per target (they are immutable).
        self._direct: dict[tuple[str, str, str | None], RoutePlan] = {}

    async def plan_for(self, call: Call) -> RoutePlan | None:
        """The route plan of this request, or ``None`` when no config applies."""
        return await self.selector.plan_for(call)

    # -- walking the plan --------------------------------------------------------------
    async def open(
        self, call: Call, build: BuildCall, *, stream: bool, parse: ParseAnswer | None = None
    ) -> UpstreamResponse:
        """Open the answer; on return ``call.target`` answered with a 2xx, body unread.

        With ``parse`` (non-streaming only) the body is read by the target's adapter
        inside the attempt; the result rides on the returned :class:`BufferedResponse`.
        """
        plan = call.plan
        if plan is None:
            assert call.target is not None
            plan = self._direct_plan(call.target)
        run = _Run(self, call, build, stream, plan, parse)
        try:
            resp, leaf = await run.node(plan.root)
        except GatewayError as exc:
            if run.client_should_not_retry(exc):
                exc.headers["x-should-retry"] = "false"
            raise
        call.target = leaf.target
        return resp

    def _direct_plan(self, target: Target) -> RoutePlan:
        if target.overrides is not None:
            return direct_plan(target)
        key = (target.provider.name, target.model, target.scope)
        plan = self._direct.get(key)
        cached = plan.root.children[0] if plan is not None else None
        if (
            plan is None
            or not isinstance(cached, Leaf)
            or (cached.target.provider is not target.provider)
        ):
            if len(self._direct) > 10_000:  # many distinct models: keep memory bounded
                self._direct.clear()
            plan = self._direct[key] = direct_plan(target)
        return plan

    def forget_plans(self) -> None:
        """Drop the cached direct plans (providers were reloaded: they hold old ones)."""
        self._direct = {}

    async def start(self) -> None:
        await self.selector.configs.start()

    async def close(self) -> None:
        await self.selector.configs.close()
        await self.breaker.close()

    async def failed(self, key: str, exc: UpstreamError, target: Target) -> bool:
        """Note a failed try (provider state, breaker); returns whether it counted."""
        if exc.status >= 500 or isinstance(exc, UpstreamUnreachable):
            target.provider.state.failed(exc.message)
        if classes_of(exc) & _UNWELL:
            await self.breaker.failure(key)
            return True
        return False


class _Run:
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
                self._record_skip(leaf.target, verdict.state)
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
                resp = await self._attempt(leaf, ucall, remaining, waited)
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
                self.call.attempts.append(
                    {
                        "provider": target.provider.name,
                        "model": target.model,
                        "at_ms": round((time.perf_counter() - self.call.started) * 1000, 1),
                        "skipped": "unsupported",
                        "error": exc.code or exc.wire_type,
                        "message": redact(exc.message)[:300],
                    }
                )
            raise

    async def _attempt(
        self, leaf: Leaf, ucall: UpstreamCall, remaining: float | None, waited: float
    ) -> UpstreamResponse:
        """One try at one target, read up to the first byte; non-2xx is raised."""
        call = self.call
        target = leaf.target
        provider = target.provider
        spec = provider.spec
        call.target = target
        timeout = leaf.spec.timeout or spec.timeout
        limit = timeout if remaining is None else min(timeout, remaining)
        ttft = leaf.spec.ttft_timeout if self.stream else None
        first_limit = limit if ttft is None else min(limit, ttft)
        entry: dict[str, Any] = {
            "provider": provider.name,
            "model": target.model,
            "at_ms": round((time.perf_counter() - call.started) * 1000, 1),
        }
        if waited:
            entry["wait_ms"] = round(waited * 1000, 1)
        if call.span is not None:  # tracing on: the attempt's span and traceparent
            call.span.attempt(entry, ucall)
        t0 = time.perf_counter()
        resp: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(first_limit):
                resp = await provider.transport.send(
                    ucall,
                    provider=spec.name,
                    # Streams: the idle gap allowed between chunks after the first.
                    # Non-streams: a backstop; the asyncio timeout above governs.
                    timeout=timeout if self.stream else limit + 1,
                    connect_timeout=min(spec.connect_timeout, first_limit),
                    stream=self.stream,
                )
                if resp.status >= 400:
                    body = await resp.read()
                    # Kept for the error answer too: what to quote to the provider.
                    call.upstream_request_id = upstream_request_id(resp.headers)
                    raise provider.adapter.error(spec, resp.status, body, resp.headers)
                if self.stream:
                    out: UpstreamResponse = await _first_chunk(resp, provider.name)
                else:
                    body = await resp.read()
                    out = BufferedResponse(
                        resp.status, resp.headers, body, self._answer(target, body)
                    )
        except TimeoutError:
            if resp is not None:
                resp.close()
            error = self._timeout_error(provider.name, first_limit, ttft, remaining)
            self._record(entry, t0, error)
            raise error from None
        except UpstreamError as exc:
            if resp is not None:
                resp.close()
            # A refusal of llmrelay's own credentials (the provider's 401, or a token
            # that could not be minted) is not the client's; secrets are scrubbed before
            # the error is recorded, retried on or sent.
            failure = upstream_refusal((target.redactor or self.router.redactor).error(exc))
            self._record(entry, t0, failure)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException as exc:
            if resp is not None:
                resp.close()  # a cancelled call must not leave the upstream generating
            self._record_ended(entry, t0, exc)
            raise
        self._record(entry, t0, None)
        return out

    def _answer(self, target: Target, body: bytes) -> ChatResult | None:
        """The adapter's reading of a 2xx body; one that is not an answer fails the try."""
        if self.parse is None:
            return None
        try:
            return self.parse(target, body)
        except _SHAPE_ERRORS as exc:
            log.warning(
                "the answer of %s did not have the provider's shape",
                target.qualified,
                exc_info=True,
            )
            raise UpstreamInvalidResponse(
                target.provider.name,
                "a body that is not of the provider's answer shape",
            ) from exc

    def _timeout_error(
        self, name: str, limit: float, ttft: float | None, remaining: float | None
    ) -> UpstreamTimeout:
        if remaining is not None and limit >= remaining:
            return DeadlineExceeded(
                f"the route's deadline ran out while waiting for {name}", provider=name
            )
        if ttft is not None and limit >= ttft:
            return UpstreamTimeout(
                f"upstream {name} sent no first byte within the ttft_timeout of {ttft:g}s",
                provider=name,
            )
        return UpstreamTimeout(f"upstream {name} timed out after {limit:g}s", provider=name)

    def _record(self, entry: dict[str, Any], t0: float, exc: UpstreamError | None) -> None:
        took = time.perf_counter() - t0
        self.call.upstream_seconds += took
        entry["latency_ms"] = round(took * 1000, 1)
        if exc is None:
            entry["status"] = 200
        else:
            entry["status"] = exc.status
            entry["error"] = exc.code or exc.wire_type
            entry["message"] = redact(exc.message)[:300]
            if isinstance(exc, UpstreamUnreachable) and exc.detail:
                target = self.call.target
                redactor = (target.redactor if target else None) or self.router.redactor
                entry["detail"] = redactor.text(exc.detail)[:300]
        self.call.attempts.append(entry)

    def _record_ended(self, entry: dict[str, Any], t0: float, exc: BaseException) -> None:
        """Record a try ended from outside (client gone, shutdown) or by a bug of ours.

        It reached the upstream, so it is recorded like any other: a call's row is
        written only when it holds an attempt, and every call that reached an upstream
        must leave one.
        """
        took = time.perf_counter() - t0
        self.call.upstream_seconds += took
        entry["latency_ms"] = round(took * 1000, 1)
        if isinstance(exc, asyncio.CancelledError):
            # A cancellation nobody asked for through Call.interrupt is the server
            # stopping (uvicorn cancels what outlives its graceful timeout).
            client = self.call.interrupted == "client"
            entry["status"] = 499 if client else 503
            entry["error"] = "client_closed_request" if client else "shutting_down"
        elif isinstance(exc, GatewayError):
            entry["status"] = exc.status
            entry["error"] = exc.code or exc.wire_type
            entry["message"] = redact(exc.message)[:300]
        else:
            entry["status"] = 500
            entry["error"] = "internal_error"
            entry["message"] = type(exc).__name__
        self.call.attempts.append(entry)

    def _record_skip(self, target: Target, state: str) -> None:
        self.call.attempts.append(
            {
                "provider": target.provider.name,
                "model": target.model,
                "at_ms": round((time.perf_counter() - self.call.started) * 1000, 1),
                "skipped": f"circuit_{state}",
            }
        )


async def _first_chunk(resp: UpstreamResponse, name: str) -> PrefetchedStream:
    chunks = resp.chunks()
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise UpstreamUnreachable(
            f"upstream {name} closed the stream before sending any data", provider=name
        ) from None
    return PrefetchedStream(resp, first, chunks)


def pick_weighted(weights: list[float], rng: random.Random) -> int:
    """Index drawn with probability ``weights[i] / sum(weights)`` (zero never drawn)."""
    total = sum(weights)
    x = rng.random() * total
    for i, w in enumerate(weights):
        x -= w
        if x < 0 and w > 0:
            return i
    return max(i for i, w in enumerate(weights) if w > 0)


def build_router(
    settings: Settings, registry: Registry, resolver: Resolver, connect: Connect
) -> Router:
    """The gateway's router; YAML configs are bound once here so a bad one stops the start."""
    from llmrelay.config import ConfigError
    from llmrelay.routing.breaker import BreakerPolicy, LocalBreaker
    from llmrelay.routing.store import parse_named

    named = parse_named(settings.route_configs)
    for name, spec in named.items():
        try:
            bind(spec, registry, resolver, "<request model>")
        except BindError as exc:
            raise ConfigError(f"invalid config: route_configs.{name}.{exc}") from exc
        except UnknownModel:
            pass  # a config of only settings ({"cache": ...}): the request's model, per call
    r = settings.routing
    cb = r.circuit_breaker
    policy = BreakerPolicy(cb.failure_threshold, cb.window, cb.cooldown)
    breaker: Breaker
    if settings.redis_url and cb.enabled:
        from llmrelay.routing.breaker_redis import RedisBreaker

        breaker = RedisBreaker(
            settings.redis_url,
            policy,
            f"{settings.redis_prefix}circuit:",
            timeout=settings.redis_timeout,
            retry_interval=settings.redis_retry_interval,
        )
    else:
        breaker = LocalBreaker(policy)
    selector = PlanSelector(
        registry=registry,
        resolver=resolver,
        configs=RouteConfigStore(named, connect, r.config_cache_ttl, settings.database_timeout),
        default_config=r.default_config,
        enforce_breaker=cb.enabled,
    )
    return Router(
        selector=selector,
        breaker=breaker,
        retry_after_cap=r.retry_after_cap,
        redactor=Redactor.for_providers(p.spec for p in registry),
    )
