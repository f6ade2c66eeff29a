"""The router: walks a request's route plan until a target answers.

Which plan a request gets is decided by :mod:`llmrelay.routing.selection`; the walk
itself (strategies, retries, circuits) is :mod:`llmrelay.routing.walk`, and one try at
one target, with its record in ``call.attempts``, is :mod:`llmrelay.routing.attempt`.
The :class:`Router` holds what every walk shares (the breaker, the retry-after cap,
the redactor, the cached direct plans) and is built once at start
(:func:`build_router`).

A group runs its strategy (single, fallback, loadbalance, conditional); a target is
tried, retried with backoff per its retry policy, and given up on when retries are
spent, the error is not retryable, the upstream asks for a wait beyond the cap, or the
deadline would pass. A fallback moves on only for the errors its target's
``on_errors`` admits; targets whose circuit is open are skipped without a call. Each
try is recorded in ``call.attempts``.

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

import random
from typing import TYPE_CHECKING

from llmrelay.errors import GatewayError, UnknownModel, UpstreamError, UpstreamUnreachable
from llmrelay.providers.registry import Registry
from llmrelay.redaction import Redactor
from llmrelay.routing.attempt import ParseAnswer
from llmrelay.routing.breaker import Breaker
from llmrelay.routing.classify import classes_of
from llmrelay.routing.plan import BindError, Leaf, RoutePlan, bind, direct_plan
from llmrelay.routing.resolve import Resolver, Target
from llmrelay.routing.selection import PlanSelector
from llmrelay.routing.store import RouteConfigStore
from llmrelay.routing.walk import BuildCall, Walk
from llmrelay.upstream import UpstreamResponse

if TYPE_CHECKING:
    from llmrelay.config import Settings
    from llmrelay.context import Call
    from llmrelay.store.database import Connect

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
        run = Walk(self, call, build, stream, plan, parse)
        root = plan.root
        only = root.children[0]
        try:
            if (
                root.spec.strategy == "single"
                and root.spec.deadline is None
                and type(only) is Leaf
                and only.spec.deadline is None
            ):
                # One target and no deadline (every direct call): what node → group →
                # node → leaf would come to, three coroutines fewer.
                resp, leaf = await run.leaf(only)
            else:
                resp, leaf = await run.node(root)
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
