"""The plug-in chain on its own: onion order, holding events back, ending a stream, and
which plug-ins a call gets from the gateway, its key and its route config."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from llmrelay.context import Call
from llmrelay.errors import BudgetExceeded, InvalidRequest, PermissionDenied
from llmrelay.plugins.chain import (
    EndStream,
    Plugin,
    PluginSelector,
    StreamStep,
    run_stream_steps,
)

CALL: Any = SimpleNamespace(key=None, plan=None, stream=True)


class Hold(StreamStep):
    """Holds every event back until the stream ends (a guardrail scanning a window)."""

    def __init__(self) -> None:
        self.held: list[bytes] = []

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        self.held.extend(events)
        return []

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        return [*self.held, *events]


class Tag(StreamStep):
    def __init__(self, tag: bytes) -> None:
        self.tag = tag

    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        return [e + self.tag for e in events]

    async def end(self, call: Call, events: list[bytes]) -> list[bytes]:
        return [e + self.tag for e in events]


class EndAfter(StreamStep):
    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        raise EndStream(BudgetExceeded("over"), events[:1])


class Deny(StreamStep):
    async def feed(self, call: Call, events: list[bytes]) -> list[bytes]:
        raise PermissionDenied("no")


async def test_steps_run_innermost_first_and_outer_steps_see_what_inner_ones_let_through() -> None:
    out, error = await run_stream_steps([Tag(b"<in"), Tag(b"<out")], CALL, [b"e"])
    assert out == [b"e<in<out"] and error is None


async def test_a_step_may_hold_events_back_and_release_them_at_the_end() -> None:
    hold = Hold()
    steps: list[StreamStep] = [hold, Tag(b"!")]
    assert await run_stream_steps(steps, CALL, [b"a", b"b"]) == ([], None)
    assert await run_stream_steps(steps, CALL, [b"c"]) == ([], None)
    out, _ = await run_stream_steps(steps, CALL, [b"[DONE]"], end=True)
    assert out == [b"a!", b"b!", b"c!", b"[DONE]!"]


async def test_end_stream_lets_its_events_out_and_names_the_error() -> None:
    out, error = await run_stream_steps([EndAfter(), Tag(b"!")], CALL, [b"a", b"b"])
    assert out == [b"a!"]
    assert isinstance(error, BudgetExceeded)


async def test_a_step_raising_drops_the_events_it_was_given() -> None:
    out, error = await run_stream_steps([Deny(), Tag(b"!")], CALL, [b"secret"])
    assert out == [] and isinstance(error, PermissionDenied)


class Named(Plugin):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)


def _selector(configured: dict[str, dict[str, Any]] | None = None) -> PluginSelector:
    return PluginSelector(
        {"a": Named, "b": Named, "cache": Named, "guardrails": Named}, (), configured
    )


def _call(metadata: Any = None, cache: Any = None, guardrails: Any = None) -> Any:
    key = SimpleNamespace(metadata=metadata)
    plan = (
        SimpleNamespace(cache=cache, guardrails=guardrails)
        if cache is not None or guardrails is not None
        else None
    )
    return SimpleNamespace(key=key, plan=plan, stream=False)


def test_gateway_key_and_route_config_select_in_that_order_later_options_win() -> None:
    selector = _selector({"a": {"n": 1}, "b": {"n": 1}})
    chain = selector.chain_for(_call({"plugins": {"b": {"n": 2}}}, cache={"mode": "simple"}))
    got = [(type(p).__name__, getattr(p, "options", None)) for p in chain.plugins]
    assert got == [("Named", {"n": 1}), ("Named", {"n": 2}), ("Named", {"mode": "simple"})]


def test_a_route_configs_guardrails_block_selects_the_guardrails_plugin() -> None:
    block = {"input": [{"type": "pii_detection"}]}
    chain = _selector({"guardrails": {"output": []}}).chain_for(_call(guardrails=block))
    assert [getattr(p, "options", None) for p in chain.plugins] == [block]


def test_plugins_are_built_once_per_distinct_options() -> None:
    selector = _selector({"a": {"n": 1}})
    first = selector.chain_for(_call()).plugins[0]
    assert selector.chain_for(_call()).plugins[0] is first
    other = selector.chain_for(_call({"plugins": {"a": {"n": 9}}})).plugins[0]
    assert other is not first


def test_an_unknown_plugin_in_the_settings_fails_at_start() -> None:
    with pytest.raises(InvalidRequest, match="unknown plug-in 'nope'"):
        _selector({"nope": {}})


def test_a_call_with_no_plugins_shares_the_empty_chain() -> None:
    selector = PluginSelector({}, ())
    assert selector.chain_for(_call()).plugins == ()


class Off(Plugin):
    def applies(self, call: Call) -> bool:
        return False


def test_plugins_that_do_not_apply_are_left_out() -> None:
    selector = PluginSelector({}, (Off(),))
    assert selector.chain_for(_call()).plugins == ()


def test_a_hostile_plugin_name_in_a_key_is_refused_and_not_echoed_whole() -> None:
    """A 10 KB name with a NUL byte in a key's metadata: a 400 whose message is bounded
    and shows the control character escaped."""
    name = "x\x00" + "y" * 10_000
    with pytest.raises(InvalidRequest) as caught:
        _selector().chain_for(_call({"plugins": {name: {}}}))
    assert caught.value.code == "unknown_plugin"
    assert len(caught.value.message) < 300 and "\x00" not in caught.value.message
    assert "\\x00" in caught.value.message


def test_large_plugin_options_from_a_key_build_one_plugin() -> None:
    options = {"blob": "z\x00" * 5_000}
    selector = _selector()
    first = selector.chain_for(_call({"plugins": {"a": options}})).plugins[0]
    again = selector.chain_for(_call({"plugins": {"a": dict(options)}})).plugins[0]
    assert first is again and getattr(first, "options", None) == options
