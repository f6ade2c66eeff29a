"""The ``cache`` plug-in: its before-step answers hits, its stream/after steps collect the
answer, and its finish step stores it once the call has ended well.

Storing waits for the end of the call (the chain's finish step, after the client has
its answer) so that nothing a later step rejected is kept: an error, a stream cut by the
upstream or the client, an answer an outer plug-in (a guardrail) ended, or one cut by
``max_tokens`` (``finish_reason: length``, unless ``store_truncated``). It also keeps the
store's round trip off the client's time.

A hit sets what the rest of the pipeline reads: the target the entry came from (headers,
rows), ``call.passthrough`` (how the codec encodes it), cost 0 (budgets and the cost
header), and ``call.cache`` (the row marks the hit and the cost it saved).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmrelay.cache import entry as entries
from llmrelay.cache.backends import Backend, BackendError, MemoryBackend, RedisBackend
from llmrelay.cache.options import CacheOptions, CacheOptionsError, parse_cache_options
from llmrelay.cache.replay import chunks_of, completion_of
from llmrelay.cache.request import cache_key, candidates, directives
from llmrelay.cache.state import BYPASS, HIT, MISS, REFRESH, CacheState
from llmrelay.errors import InvalidRequest
from llmrelay.governance.pricing import cost_nanos
from llmrelay.plugins.chain import Answer, Plugin, Replay, StreamStep
from llmrelay.providers.base import ChatResult

if TYPE_CHECKING:
    from llmrelay.config import Settings
    from llmrelay.context import Call
    from llmrelay.governance.governor import Governor
    from llmrelay.routing.resolve import Target
    from llmrelay.telemetry.metrics import Metrics

log = logging.getLogger("llmrelay.cache")

#: The endpoints whose answers are cached (token counting is not a model answer).
CACHED_ROUTES = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses",
                           "/v1/embeddings"})
#: Finish reasons never stored: the answer is not the model's whole answer.
_NEVER_STORED = frozenset({"error", "content_filter"})


def _wants_usage(call: Call) -> bool:
    """Whether a replayed stream carries a usage chunk: chat clients ask for it with
    ``stream_options.include_usage``; the Messages and Responses encoders always need it."""
    if call.route != "/v1/chat/completions":
        return True
    assert call.body is not None
    options = call.body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class CacheRuntime:
    """What every ``cache`` plug-in of a gateway shares: the backend, prices, counters."""

    def __init__(self, settings: Settings, governor: Governor, metrics: Metrics) -> None:
        cfg = settings.response_cache
        self.governor = governor
        self.metrics = metrics
        self.max_entry_bytes = cfg.max_entry_bytes
        url = cfg.redis_url or settings.redis_url
        self.backend: Backend
        if cfg.backend == "redis" or (cfg.backend == "auto" and url):
            assert url is not None  # checked with the settings
            self.backend = RedisBackend(url, settings.redis_prefix + "cache:simple:",
                                        settings.redis_timeout, settings.redis_retry_interval)
        else:
            self.backend = MemoryBackend(cfg.max_bytes)

    def plugin(self, options: Mapping[str, Any]) -> Plugin:
        """The factory registered as ``cache`` (one plug-in per distinct options)."""
        try:
            parsed = parse_cache_options(options)
        except CacheOptionsError as exc:
            raise InvalidRequest(f"invalid cache options: {exc}", param=exc.path,
                                 code="invalid_cache_options") from None
        return ResponseCache(self, parsed)

    def _failed(self, exc: BackendError) -> None:
        self.metrics.cache_errors.labels(self.backend.name).inc()
        log.debug("response cache backend failed: %s", exc)

    async def lookup(self, key: str, stream: bool) -> entries.Entry | None:
        """The entry that can answer a call of this form, or ``None`` (a failure too)."""
        try:
            found = await self.backend.get([key, entries.form_key(key, stream)])
        except BackendError as exc:
            self._failed(exc)
            return None
        for raw in found:
            if raw is not None:
                entry = entries.decode(raw)
                if entry is not None and (not entry.stream or stream):
                    return entry
        return None

    async def store(self, key: str, entry: entries.Entry, ttl: float) -> None:
        raw = entries.encode(entry)
        if len(raw) > self.max_entry_bytes:
            return
        try:
            await self.backend.set(key, raw, ttl)
        except BackendError as exc:
            self._failed(exc)

    def cost(self, call: Call) -> int:
        """What the call's answer cost (nano-dollars): what a hit on it will save."""
        if call.usage is None or call.target is None:
            return 0
        price = self.governor.price_of(call.target)
        return cost_nanos(call.usage, price) if price is not None else 0

    def status(self) -> dict[str, Any]:
        return self.backend.status()

    async def close(self) -> None:
        await self.backend.close()


class ResponseCache(Plugin):
    name = "cache"

    def __init__(self, runtime: CacheRuntime, options: CacheOptions) -> None:
        self.runtime = runtime
        self.options = options

    def applies(self, call: Call) -> bool:
        return call.route in CACHED_ROUTES and call.key is not None

    async def before(self, call: Call) -> Answer | None:
        wanted = directives(call.request)
        state = CacheState()
        call.cache = state
        if wanted.bypass:
            return self._report(call, BYPASS)
        namespace = wanted.namespace if wanted.namespace is not None else self.options.namespace
        state.key = cache_key(call, self.options, namespace)
        state.store = wanted.store
        state.ttl = min(self.options.ttl, wanted.ttl or math.inf)
        if not wanted.lookup:
            return self._report(call, REFRESH)
        found = await self.runtime.lookup(state.key, call.stream)
        if found is not None:
            ages = [a for a in (self.options.max_age, wanted.max_age) if a is not None]
            age = max(0.0, time.time() - found.created)
            if not ages or age <= min(ages):
                answer = self._hit(call, state, found, age)
                if answer is not None:
                    return answer
        return self._report(call, MISS)

    @staticmethod
    def _report(call: Call, result: str) -> None:
        assert call.cache is not None
        call.cache.result = result
        call.extra_headers["x-llmrelay-cache"] = result
        return None

    @staticmethod
    def _target(call: Call, entry: entries.Entry) -> Target | None:
        for target in candidates(call):
            if target.provider.name == entry.provider and target.model == entry.model:
                return target
        return None

    def _hit(self, call: Call, state: CacheState, entry: entries.Entry, age: float
             ) -> Answer | None:
        target = self._target(call, entry)
        if target is None:  # the key names the targets, so only a hash collision lands here
            return None
        call.target = target
        call.passthrough = entry.passthrough
        call.cost_nanos = 0  # a hit costs nothing: budgets, the cost header, the rows
        state.result, state.age, state.saved_nanos, state.store = HIT, age, entry.cost_nanos, False
        call.extra_headers["x-llmrelay-cache"] = HIT
        call.extra_headers["x-llmrelay-cache-age"] = str(int(age))
        if not call.stream:
            return ChatResult(entry.body, entry.usage, entry.finish_reason)
        events = (list(entry.events) if entry.stream
                  else chunks_of(entry.body, entry.usage, _wants_usage(call)))
        return Replay(events, entry.usage, entry.finish_reason)

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        state = call.cache
        if state is not None and state.store:
            state.answer = answer
        return answer

    def stream(self, call: Call) -> StreamStep | None:
        state = call.cache
        if state is None or not state.store:
            return None
        state.events = []
        return _Collect(state, self.runtime.max_entry_bytes)

    async def finish(self, call: Call) -> None:
        state = call.cache
        if (state is None or not state.store or state.key is None or call.target is None
                or call.error is not None or call.interrupted is not None
                or call.status != 200):
            return
        finish = call.finish_reason
        if finish in _NEVER_STORED or (finish == "length" and not self.options.store_truncated):
            return
        target = call.target
        common: dict[str, Any] = {
            "created": time.time(), "provider": target.provider.name, "model": target.model,
            "passthrough": call.passthrough, "usage": call.usage, "finish_reason": finish,
            "cost_nanos": self.runtime.cost(call)}
        key = state.key
        if state.answer is not None:
            entry = entries.Entry(body=state.answer.body, **common)
            if call.passthrough:
                key = entries.form_key(key, False)
        elif state.ended and state.events is not None:
            if call.passthrough:
                entry = entries.Entry(stream=True, events=state.events, **common)
                key = entries.form_key(key, True)
            else:
                body = completion_of(state.events, call.usage)
                if body is None:
                    return
                entry = entries.Entry(body=body, **common)
        else:
            return
        await self.runtime.store(key, entry, state.ttl)


class _Collect(StreamStep):
    """Keeps a copy of the events a stream sends, up to the entry size limit."""

    __slots__ = ("limit", "state")

    def __init__(self, state: CacheState, limit: int) -> None:
        self.state = state
        self.limit = limit

    def _keep(self, events: list[bytes]) -> None:
        state = self.state
        if state.events is None:
            return
        state.events_bytes += sum(len(e) for e in events)
        if state.events_bytes > self.limit:
            state.events = None  # too big to store: stop holding it
        else:
            state.events.extend(events)

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        self._keep(events)
        return events

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        self._keep(events)
        self.state.ended = True
        return events
