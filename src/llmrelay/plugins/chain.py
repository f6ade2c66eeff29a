"""The plug-in chain: cross-cutting steps around a call's upstream attempts, in onion order.

A plug-in may have three steps, each optional (the :class:`Plugin` base does nothing)::

    before  (in order)          may answer the call itself (a cache hit, a guardrail
                                deny by raising) and so skip the upstream and every
                                plug-in after it
    attempts (router)           only when no before-step answered
    stream  (reverse order)     sees each translated event of a streamed answer before
                                it is encoded for the client: may rewrite it, hold it
                                back, or end the stream by raising a GatewayError
    after   (reverse order)     sees the complete answer (non-streamed) and may replace it
    finish  (reverse order)     the call has ended (answered, failed or cut: see
                                ``call.error`` / ``call.interrupted``); runs in the
                                pipeline's ``finally`` after the client has its answer,
                                may not change it (the cache stores answers here)

After-, stream- and finish-steps run only for plug-ins whose before-step ran, innermost first,
so a plug-in wraps everything inside it like a layer of an onion. Answers and events
are in the internal form: OpenAI's ``chat.completion`` / ``chat.completion.chunk`` (or,
when ``call.passthrough`` is set, the provider's own shape the client also speaks).

Which plug-ins a call gets is decided by :class:`PluginSelector`: the gateway's
built-ins, then the plug-ins named in the settings' ``plugins`` block, then those in
the key's ``metadata.plugins``, then those a route config selects by a block of the
plug-in's name (``cache:``); a later source's options for the same plug-in win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from llmrelay.errors import GatewayError, InvalidRequest
from llmrelay.providers.base import ChatResult, Usage

if TYPE_CHECKING:
    from llmrelay.context import Call

log = logging.getLogger("llmrelay")


@dataclass(slots=True)
class Replay:
    """A streamed answer a before-step gives in place of the upstream's: the internal
    events, in order, and what the call is billed as."""

    events: list[bytes]
    usage: Usage | None = None
    finish_reason: str | None = None


#: What a before-step may answer with: a whole answer for a JSON call, a replay for a
#: streaming one.
Answer = ChatResult | Replay


class EndStream(Exception):
    """Raised by a stream step: ``events`` still go out, then the stream ends with
    ``error`` (as an error event in the client's shape)."""

    def __init__(self, error: GatewayError, events: list[bytes]) -> None:
        super().__init__(error.message)
        self.error = error
        self.events = events


class StreamStep:
    """One plug-in's view of one streamed answer (made per call by :meth:`Plugin.stream`).

    ``feed`` gets the events translated from one upstream read and returns what goes
    on; returning fewer holds them back (they can be released by a later ``feed`` or by
    ``end``). Raising a :class:`~llmrelay.errors.GatewayError` ends the stream with an
    error event in the client's shape, dropping the events it was given; raising
    :class:`EndStream` sends the events it names first.
    """

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return events

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        """The upstream finished: ``events`` are the last ones (``[DONE]`` ...)."""
        return events


class Plugin:
    """Base of every plug-in; override the steps it needs."""

    #: The name settings, keys and route configs select it by.
    name: ClassVar[str] = "plugin"

    def applies(self, call: Call) -> bool:
        """Whether the plug-in takes part in this call at all (cheap; checked first)."""
        return True

    async def before(self, call: Call) -> Answer | None:
        return None

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        return answer

    def stream(self, call: Call) -> StreamStep | None:
        return None

    async def finish(self, call: Call) -> None:
        """The call is over (whatever its outcome); an error raised here is only logged."""
        return None


#: Builds a plug-in from its options (the block that selected it).
PluginFactory = Callable[[Mapping[str, Any]], Plugin]


@dataclass(slots=True)
class Chain:
    """The plug-ins of one call, and which of them have run their before-step."""

    plugins: tuple[Plugin, ...]
    entered: list[Plugin] = field(default_factory=list)

    async def before(self, call: Call) -> Answer | None:
        for plugin in self.plugins:
            self.entered.append(plugin)
            answer = await plugin.before(call)
            if answer is not None:
                return answer
        return None

    async def after(self, call: Call, answer: ChatResult) -> ChatResult:
        for plugin in reversed(self.entered):
            answer = await plugin.after(call, answer)
        return answer

    async def finish(self, call: Call) -> None:
        """Every entered plug-in's finish step, innermost first; never raises."""
        for plugin in reversed(self.entered):
            try:
                await plugin.finish(call)
            except Exception:
                log.exception("plug-in %s failed in its finish step", plugin.name)

    def stream_steps(self, call: Call) -> list[StreamStep]:
        """Innermost first: the order events travel out from the upstream."""
        steps = []
        for plugin in reversed(self.entered):
            step = plugin.stream(call)
            if step is not None:
                steps.append(step)
        return steps


async def run_stream_steps(
    steps: list[StreamStep], call: Call, events: list[bytes], *, end: bool = False
) -> tuple[list[bytes], GatewayError | None]:
    """Pass one read's events through every step, innermost first.

    Returns what goes on to the client and, when a step ended the stream, its error
    (the outer steps still see the events that step let through).
    """
    error: GatewayError | None = None
    for step in steps:
        try:
            events = await (step.end(call, events) if end else step.feed(call, events))
        except EndStream as stop:
            error = error or stop.error
            events = stop.events
        except GatewayError as exc:
            error = error or exc
            events = []
    return events, error


EMPTY = Chain(())


class PluginSelector:
    """Chooses each call's plug-ins from the gateway, its key and its route config."""

    def __init__(
        self,
        factories: Mapping[str, PluginFactory],
        builtins: tuple[Plugin, ...] = (),
        configured: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.factories = dict(factories)
        self.builtins = builtins
        self.configured = dict(configured or {})
        for name in self.configured:
            self._factory(name, "plugins")
        #: Plug-ins built per distinct options, so a call builds none.
        self._built: dict[tuple[str, bytes], Plugin] = {}

    def _factory(self, name: str, where: str) -> PluginFactory:
        factory = self.factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self.factories)) or "none yet"
            raise InvalidRequest(
                # The name may come from a key's metadata: bounded, control characters
                # shown escaped by repr, never echoed whole.
                f"{where}: unknown plug-in {name[:64]!r} (known: {known})",
                param=where,
                code="unknown_plugin",
            )
        return factory

    def _plugin(self, name: str, options: Mapping[str, Any], where: str) -> Plugin:
        key = (name, orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
        plugin = self._built.get(key)
        if plugin is None:
            plugin = self._factory(name, where)(options)
            if len(self._built) < 4096:  # options come from keys and configs: bounded
                self._built[key] = plugin
        return plugin

    def chain_for(self, call: Call) -> Chain:
        """The call's chain, outermost first: gateway, key, route config, built-ins."""
        metadata = call.key.metadata if call.key is not None else None
        if not self.configured and call.plan is None and not metadata:
            # Most calls: only the built-ins can apply (no dicts built for nothing).
            active = tuple(p for p in self.builtins if p.applies(call))
            return Chain(active) if active else EMPTY
        chosen: dict[str, tuple[Mapping[str, Any], str]] = {
            name: (options, "plugins") for name, options in self.configured.items()
        }
        from_key = metadata.get("plugins") if isinstance(metadata, dict) else None
        if isinstance(from_key, dict):
            for name, options in from_key.items():
                chosen[name] = (
                    options if isinstance(options, dict) else {},
                    "key metadata.plugins",
                )
        if call.plan is not None and call.plan.cache is not None and "cache" in self.factories:
            chosen["cache"] = (call.plan.cache, "route config cache")
        if (
            call.plan is not None
            and call.plan.guardrails is not None
            and "guardrails" in self.factories
        ):
            chosen["guardrails"] = (call.plan.guardrails, "route config guardrails")
        plugins = [self._plugin(name, options, where) for name, (options, where) in chosen.items()]
        plugins.extend(self.builtins)
        active = tuple(p for p in plugins if p.applies(call))
        return Chain(active) if active else EMPTY
