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

What the gateway's cache plug-ins share (the backend, the semantic index, the
embedders, the single-flight table) is :class:`~llmrelay.cache.plugin.CacheRuntime`,
whose ``plugin`` factory builds one :class:`ResponseCache` per distinct options.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmrelay.cache import entry as entries
from llmrelay.cache.options import CacheOptions
from llmrelay.cache.replay import chunks_of, completion_of
from llmrelay.cache.replay_messages import events_of_message, message_of_events
from llmrelay.cache.replay_responses import events_of_response, response_of_events
from llmrelay.cache.request import Directives, cache_key, candidates, directives
from llmrelay.cache.semantic import split
from llmrelay.cache.state import BYPASS, HIT, MISS, REFRESH, SEMANTIC, CacheState
from llmrelay.plugins.chain import Answer, Plugin, Replay, StreamStep
from llmrelay.providers.base import ChatResult

if TYPE_CHECKING:
    from llmrelay.cache.plugin import CacheRuntime
    from llmrelay.context import Call
    from llmrelay.routing.resolve import Target

#: The endpoints whose answers are cached (token counting is not a model answer).
CACHED_ROUTES = frozenset(
    {"/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings"}
)
#: Pass-through answers are stored as JSON and serve streams too: per endpoint, the
#: provider's JSON -> its events, and its events -> JSON.
CONVERTIBLE: dict[
    str, tuple[Callable[[bytes], list[bytes] | None], Callable[[list[bytes]], bytes | None]]
] = {
    "/v1/messages": (events_of_message, message_of_events),
    "/v1/responses": (events_of_response, response_of_events),
}
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


#: Single flight: how long an identical non-streamed miss waits for the first one's
#: answer before calling the upstream itself (a slow model must not hold it forever).
_FLIGHT_WAIT = 30.0

#: Where ``response_cache.metadata`` adds seed 004's metadata to JSON answers.
_METADATA_ROUTES = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses"})


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
        question = self._question(call, namespace)
        if not wanted.lookup:
            if question is not None and state.store:
                state.context, state.vector = question[0], await self._embed(question[1])
            return self._report(call, REFRESH)
        found = await self.runtime.lookup(state.key, call.stream, call.route)
        answer = self._fresh_hit(call, state, wanted, found, HIT)
        if answer is not None:
            return answer
        flight = self.runtime.flights.get(state.key)
        if flight is not None and not call.stream:
            answer = await self._follow(call, state, wanted, flight)
            if answer is not None:
                return answer
        if question is not None:
            state.context, state.vector = question[0], await self._embed(question[1])
            if state.vector is not None:
                threshold = max(self.options.threshold, wanted.threshold or 0.0)
                match = self.runtime.index.search(state.context, state.vector, threshold)
                shared = self.runtime.shared
                if match is None and shared is not None and shared.pgvector:
                    match = await shared.search(state.context, state.vector, threshold)
                if match is not None:
                    found = await self.runtime.lookup(match[0], call.stream, call.route)
                    state.similarity = match[1]
                    answer = self._fresh_hit(call, state, wanted, found, SEMANTIC)
                    if answer is not None:
                        return answer
        if state.store and state.key not in self.runtime.flights:
            self.runtime.flights[state.key] = state.flight = asyncio.Event()
        return self._report(call, MISS)

    async def _follow(
        self, call: Call, state: CacheState, wanted: Directives, flight: asyncio.Event
    ) -> Answer | None:
        """Single flight: wait for the miss of the same key in flight here to store its
        answer (at most ``_FLIGHT_WAIT``), then look it up again. Streams do not wait:
        that would hold their first byte until the whole first answer had arrived."""
        assert state.key is not None
        try:
            async with asyncio.timeout(_FLIGHT_WAIT):
                await flight.wait()
        except TimeoutError:
            return None
        found = await self.runtime.lookup(state.key, call.stream, call.route)
        return self._fresh_hit(call, state, wanted, found, HIT)

    def _question(self, call: Call, namespace: str) -> tuple[str, str] | None:
        """Semantic mode: ``(context hash, last user turn)``, if the call has one."""
        if self.options.mode != "semantic" or not (
            self.options.embedding_model or self.runtime.embedding_model
        ):
            return None
        assert call.body is not None
        parts = split(call.route, call.body)
        if parts is None:
            return None
        return cache_key(call, self.options, namespace, parts[0], "context"), parts[1]

    async def _embed(self, text: str) -> list[float] | None:
        model = self.options.embedding_model or self.runtime.embedding_model
        assert model is not None  # checked when the plug-in was built
        return await self.runtime.embed(model, text)

    def _fresh_hit(
        self,
        call: Call,
        state: CacheState,
        wanted: Directives,
        found: entries.Entry | None,
        result: str,
    ) -> Answer | None:
        if found is None:
            return None
        ages = [a for a in (self.options.max_age, wanted.max_age) if a is not None]
        age = max(0.0, time.time() - found.created)
        if ages and age > min(ages):
            return None
        return self._hit(call, state, found, age, result)

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

    def _hit(
        self, call: Call, state: CacheState, entry: entries.Entry, age: float, result: str
    ) -> Answer | None:
        target = self._target(call, entry)
        if target is None:  # the key names the targets, so only a hash collision lands here
            return None
        events: list[bytes] | None = None
        if call.stream:
            if entry.stream:
                events = list(entry.events)
            elif entry.passthrough:  # the provider's JSON (see lookup)
                events = CONVERTIBLE[call.route][0](entry.body)
            else:
                events = chunks_of(entry.body, entry.usage, _wants_usage(call))
            if events is None:
                return None
        call.target = target
        call.passthrough = entry.passthrough
        call.cost_nanos = 0  # a hit costs nothing: budgets, the cost header, the rows
        state.result, state.age, state.saved_nanos = result, age, entry.cost_nanos
        state.store = False
        call.extra_headers["x-llmrelay-cache"] = result
        call.extra_headers["x-llmrelay-cache-age"] = str(int(age))
        if result == SEMANTIC and state.similarity is not None:
            call.extra_headers["x-llmrelay-cache-similarity"] = f"{state.similarity:.4f}"
        if events is None:
            return ChatResult(entry.body, entry.usage, entry.finish_reason)
        return Replay(events, entry.usage, entry.finish_reason)

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        state = call.cache
        if state is not None and state.store:
            state.answer = answer  # stored as it came, without the metadata below
        if (
            state is not None
            and self.runtime.add_metadata
            and call.route in _METADATA_ROUTES
            and call.target is not None
        ):
            cost = (0 if state.hit else self.runtime.cost(call, answer.usage)) / 1e9
            provider = call.target.provider.name
            if call.route == "/v1/responses":
                # A response's own ``metadata`` echoes the request's, strings only (the
                # API's type): the three are added to it as strings.
                given = call.body.get("metadata") if call.body is not None else None
                call.answer_fields["metadata"] = {
                    **(given if isinstance(given, dict) else {}),
                    "cache_hit": "true" if state.hit else "false",
                    "provider": provider,
                    "cost_usd": f"{cost:.9f}",
                }
            else:
                call.answer_fields["metadata"] = {
                    "cache_hit": state.hit,
                    "provider": provider,
                    "cost_usd": cost,
                }
        return answer

    def stream(self, call: Call) -> StreamStep | None:
        state = call.cache
        if state is None or not state.store:
            return None
        state.events = []
        return _Collect(state, self.runtime.max_entry_bytes)

    async def finish(self, call: Call) -> None:
        try:
            await self._finish(call)
        finally:
            state = call.cache
            if state is not None and state.flight is not None:
                # Stored or not, the calls waiting on this one look up and go on.
                if state.key is not None and self.runtime.flights.get(state.key) is state.flight:
                    del self.runtime.flights[state.key]
                state.flight.set()

    async def _finish(self, call: Call) -> None:
        state = call.cache
        if (
            state is None
            or not state.store
            or state.key is None
            or call.target is None
            or call.error is not None
            or call.interrupted is not None
            or call.status != 200
        ):
            return
        if call.guardrails is not None and call.guardrails.counts:
            return  # a guardrail found something (flagged, redacted): never kept
        finish = call.finish_reason
        if finish in _NEVER_STORED or (finish == "length" and not self.options.store_truncated):
            return
        target = call.target
        common: dict[str, Any] = {
            "created": time.time(),
            "provider": target.provider.name,
            "model": target.model,
            "passthrough": call.passthrough,
            "usage": call.usage,
            "finish_reason": finish,
            "cost_nanos": self.runtime.cost(call),
        }
        key = state.key
        if state.answer is not None:
            entry = entries.Entry(body=state.answer.body, **common)
            if call.passthrough:
                key = entries.form_key(key, False)
        elif state.ended and state.events is not None:
            if call.passthrough and call.route in CONVERTIBLE:
                message = CONVERTIBLE[call.route][1](state.events)
                if message is None:
                    return
                entry = entries.Entry(body=message, **common)
                key = entries.form_key(key, False)
            elif call.passthrough:
                entry = entries.Entry(stream=True, events=state.events, **common)
                key = entries.form_key(key, True)
            else:
                body = completion_of(state.events, call.usage)
                if body is None:
                    return
                entry = entries.Entry(body=body, **common)
        else:
            return
        if await self.runtime.store(key, entry, state.ttl) and state.vector is not None:
            assert state.context is not None
            self.runtime.index.add(state.context, state.vector, state.key, state.ttl)
            if self.runtime.channel is not None:
                await self.runtime.channel.publish(
                    state.context, state.vector, state.key, state.ttl
                )
            if self.runtime.shared is not None:
                await self.runtime.shared.add(state.context, state.vector, state.key, state.ttl)


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
