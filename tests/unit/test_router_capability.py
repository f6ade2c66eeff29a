"""A target whose family cannot serve the call is an attempt outcome the router routes on.

The router runs for real here (plans bound from route configs, the real adapters building
each call, the real breaker), in front of a scripted in-memory transport: what reached
the "upstream" is exactly what the transport saw.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llmrelay.asgi import Request
from llmrelay.config import load_settings
from llmrelay.context import Call
from llmrelay.errors import CapabilityMissing, CircuitOpen, UpstreamError
from llmrelay.providers.base import UpstreamCall
from llmrelay.providers.mock import MockTransport
from llmrelay.providers.registry import Registry, build_registry
from llmrelay.routing.breaker import BreakerPolicy, LocalBreaker, Verdict
from llmrelay.routing.config import parse_route_config
from llmrelay.routing.plan import RoutePlan, bind
from llmrelay.routing.resolve import Resolver, Target
from llmrelay.routing.router import Router
from llmrelay.routing.selection import PlanSelector
from llmrelay.routing.store import RouteConfigStore

EMBED = {"model": "text-embedding-3-small", "input": "hello"}
ANSWER = {
    "object": "list",
    "model": "text-embedding-3-small",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}


class Answer:
    """An upstream answer held in memory (the shape the router reads)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.headers = {"content-type": "application/json"}
        self._body = orjson.dumps(body)

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    def close(self) -> None:
        pass


class Upstream:
    """Every call sent, by provider; answers 200, or ``fail[provider]``'s status."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail: dict[str, int] = {}

    async def send(
        self,
        call: UpstreamCall,
        *,
        provider: str,
        timeout: float,
        connect_timeout: float,
        stream: bool,
    ) -> Answer:
        self.sent.append(provider)
        status = self.fail.get(provider)
        if status is not None:
            return Answer(status, {"error": {"message": "down", "type": "server_error"}})
        return Answer(200, ANSWER)

    async def close(self) -> None:
        pass


class SpyBreaker(LocalBreaker):
    """The real breaker, noting whom it was asked about and told of."""

    def __init__(self) -> None:
        super().__init__(BreakerPolicy(failure_threshold=1, window=60, cooldown=60))
        self.asked: list[str] = []
        self.failures: list[str] = []

    async def acquire(self, key: str) -> Verdict:
        self.asked.append(key)
        return await super().acquire(key)

    async def failure(self, key: str) -> None:
        self.failures.append(key)
        await super().failure(key)


def registry(upstream: Upstream) -> Registry:
    settings = load_settings(
        env={},
        overrides={
            "providers": [
                {"name": "claude", "type": "anthropic", "api_key": "sk-ant-1"},
                {"name": "claude2", "type": "anthropic", "api_key": "sk-ant-2"},
                {
                    "name": "oai",
                    "type": "openai_compatible",
                    "base_url": "http://up.invalid/v1",
                    "api_key": "sk-1",
                },
            ]
        },
    )
    return build_registry(settings, {}, upstream, MockTransport())  # type: ignore[arg-type]


class Harness:
    def __init__(self) -> None:
        self.upstream = Upstream()
        self.registry = registry(self.upstream)
        self.resolver = Resolver(self.registry, {}, {})
        self.breaker = SpyBreaker()
        configs = RouteConfigStore({}, None, 60.0)  # type: ignore[arg-type]
        selector = PlanSelector(registry=self.registry, resolver=self.resolver, configs=configs)
        self.router = Router(selector=selector, breaker=self.breaker, rng=random.Random(7))

    def call(self, config: dict[str, Any]) -> Call:
        request = Request(
            {"type": "http", "path": "/v1/embeddings", "method": "POST", "headers": []}, _no_body
        )
        call = Call(request=request, route="/v1/embeddings", request_id="req-1")
        root = bind(parse_route_config(config), self.registry, self.resolver, EMBED["model"])
        call.plan = RoutePlan(root, source="header", enforce_breaker=True)
        return call

    def embed(self, call: Call) -> Any:
        def build(t: Target) -> UpstreamCall:
            return t.provider.adapter.embeddings_request(t.provider.spec, dict(EMBED), t.model)

        return asyncio.run(self.router.open(call, build, stream=False))


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def fallback(first_on_errors: list[Any], *, retry: int = 0) -> dict[str, Any]:
    return {
        "strategy": "fallback",
        "retry": {"attempts": retry},
        "targets": [
            {"provider": "claude", "model": "claude-sonnet-4-5", "on_errors": first_on_errors},
            {"provider": "oai", "model": "text-embedding-3-small"},
        ],
    }


def skip_of(attempt: dict[str, Any]) -> tuple[Any, ...]:
    return attempt["provider"], attempt.get("skipped"), attempt.get("error"), "status" in attempt


@pytest.mark.parametrize("on_errors", [["*"], ["unsupported"], ["4xx"], [400], ["400"]])
def test_fallback_moves_past_a_target_that_cannot_serve_the_call(on_errors: list[Any]) -> None:
    h = Harness()
    call = h.call(fallback(on_errors, retry=3))
    resp = h.embed(call)
    assert resp.status == 200
    assert call.target is not None and call.target.provider.name == "oai"
    # No call reached claude, it was not retried, and the breaker never heard of it.
    assert h.upstream.sent == ["oai"]
    assert h.breaker.asked == ["oai/text-embedding-3-small"] and not h.breaker.failures
    skip, served = call.attempts
    assert skip_of(skip) == ("claude", "unsupported", "unsupported_endpoint", False)
    assert "claude cannot serve embeddings" in skip["message"]
    assert served["provider"] == "oai" and served["status"] == 200
    assert call.attempt_count == 1  # the skip is no upstream call


@pytest.mark.parametrize("on_errors", [["timeout"], ["5xx", "rate_limit"], [404]])
def test_a_fallback_not_admitting_it_answers_the_400(on_errors: list[Any]) -> None:
    h = Harness()
    call = h.call(fallback(on_errors))
    with pytest.raises(CapabilityMissing) as caught:
        h.embed(call)
    exc = caught.value
    assert exc.status == 400 and exc.code == "unsupported_endpoint" and "claude" in exc.message
    assert exc.headers["x-should-retry"] == "false"  # the same call can never succeed
    assert h.upstream.sent == [] and h.breaker.asked == []
    assert [skip_of(a) for a in call.attempts] == [
        ("claude", "unsupported", "unsupported_endpoint", False)
    ]
    assert call.target is not None and call.target.provider.name == "claude"


def test_loadbalance_draws_around_a_target_that_cannot_serve_the_call() -> None:
    h = Harness()
    config = {
        "strategy": "loadbalance",
        "targets": [
            {"provider": "claude", "model": "claude-sonnet-4-5", "weight": 1000},
            {"provider": "oai", "model": "text-embedding-3-small", "weight": 1},
        ],
    }
    for _ in range(5):
        call = h.call(config)
        assert h.embed(call).status == 200
        assert call.target is not None and call.target.provider.name == "oai"
        assert [a["provider"] for a in call.attempts if "status" in a] == ["oai"]
    assert h.upstream.sent == ["oai"] * 5


def test_when_no_target_can_serve_the_call_the_client_gets_the_400() -> None:
    h = Harness()
    config = {
        "strategy": "loadbalance",
        "targets": [{"provider": "claude", "model": "a"}, {"provider": "claude2", "model": "b"}],
    }
    call = h.call(config)
    with pytest.raises(CapabilityMissing, match="cannot serve embeddings"):
        h.embed(call)
    assert sorted(a["provider"] for a in call.attempts) == ["claude", "claude2"]
    assert h.upstream.sent == [] and call.attempt_count == 0


def test_a_real_failure_is_answered_over_a_missing_capability() -> None:
    """oai failed, claude could never have served it: the client hears of oai's 503."""
    h = Harness()
    h.upstream.fail["oai"] = 503
    call = h.call(
        {
            "strategy": "fallback",
            "targets": [
                {"provider": "oai", "model": "text-embedding-3-small"},
                {"provider": "claude", "model": "claude-sonnet-4-5"},
            ],
        }
    )
    with pytest.raises(UpstreamError) as caught:
        h.embed(call)
    assert not isinstance(caught.value, CapabilityMissing) and caught.value.status == 503
    assert [(a["provider"], a.get("status")) for a in call.attempts] == [
        ("oai", 503),
        ("claude", None),
    ]


def test_an_open_circuit_is_answered_over_a_missing_capability() -> None:
    """oai can serve the call once its circuit closes: 503 circuit_open, not the 400."""
    h = Harness()
    h.upstream.fail["oai"] = 500
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "oai", "model": "text-embedding-3-small"},
            {"provider": "claude", "model": "claude-sonnet-4-5"},
        ],
    }
    with pytest.raises(UpstreamError):
        h.embed(h.call(config))  # the one failure that opens oai's circuit
    call = h.call(config)
    with pytest.raises(CircuitOpen):
        h.embed(call)
    assert [a.get("skipped") for a in call.attempts] == ["circuit_open", "unsupported"]


def test_a_half_open_probe_is_not_spent_on_a_target_that_cannot_serve_the_call() -> None:
    """Consulting claude's circuit first would let a call that never reached it close
    the circuit; the capability is checked before the breaker is asked."""
    h = Harness()
    asyncio.run(h.breaker.failure("claude/claude-sonnet-4-5"))  # open (threshold 1)
    call = h.call(fallback(["*"]))
    assert h.embed(call).status == 200
    assert "claude/claude-sonnet-4-5" not in h.breaker.asked
    assert h.breaker.acquire_now("claude/claude-sonnet-4-5").state == "open"
