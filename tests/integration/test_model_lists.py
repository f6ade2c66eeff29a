"""Provider model lists through a real gateway: periodic refresh, on-demand refresh, and
the last good list kept when the provider fails or lists nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from llmrelay.mock_answers import openai_format as oa
from llmrelay.mock_upstream import MockState, MockUpstream
from tests.gateway_proc import GatewayProcess


@dataclass
class Lister:
    """What the upstream's ``GET /v1/models`` answers right now (set by the test)."""

    models: list[str] = field(default_factory=lambda: ["alpha", "beta"])
    status: int = 200
    calls: int = 0

    def routes(self, state: MockState) -> list[web.RouteDef]:
        async def models(request: web.Request) -> web.StreamResponse:
            self.calls += 1
            if self.status != 200:
                return web.json_response(oa.error_body(self.status), status=self.status)
            return web.json_response(oa.models_response(self.models, created=1))

        return [web.get("/v1/models", models, allow_head=False)]


@pytest.fixture
def lister() -> Iterator[tuple[Lister, MockUpstream]]:
    state = Lister()
    with MockUpstream(providers=[state.routes]) as upstream:
        yield state, upstream


def listed(gw: GatewayProcess, key: str, query: str = "") -> list[str]:
    r = httpx.get(
        f"{gw.base_url}/models?provider=lst{query}",
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return [m["id"] for m in r.json()["data"]]


def config(upstream: MockUpstream, interval: Any) -> dict[str, Any]:
    return {
        "provider_reload_interval": interval,
        "providers": [
            {
                "name": "lst",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "x",
                "models": ["pinned"],
            }
        ],
    }


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_periodic_refresh_keeps_last_good_list(
    start_gateway: Callable[..., GatewayProcess], lister: tuple[Lister, MockUpstream]
) -> None:
    state, upstream = lister
    gw = start_gateway(config(upstream, 0.2))
    key = gw.create_key("lists")
    assert listed(gw, key) == ["lst/pinned", "lst/alpha", "lst/beta"]
    state.models = ["alpha", "gamma"]
    assert wait_for(lambda: "lst/gamma" in listed(gw, key))
    assert "lst/beta" not in listed(gw, key)
    for failure in (503, 401):  # an outage, then a revoked key: the list stays
        state.status = failure
        target = state.calls + 2
        assert wait_for(lambda t=target: state.calls >= t)  # type: ignore[misc]
        assert listed(gw, key) == ["lst/pinned", "lst/alpha", "lst/gamma"]
    state.status, state.models = 200, []  # an empty answer is not trusted either
    calls = state.calls
    assert wait_for(lambda: state.calls >= calls + 2)
    assert listed(gw, key) == ["lst/pinned", "lst/alpha", "lst/gamma"]
    assert "model list of provider lst not refreshed" in gw.logs()


def test_on_demand_refresh(
    start_gateway: Callable[..., GatewayProcess], lister: tuple[Lister, MockUpstream]
) -> None:
    state, upstream = lister
    gw = start_gateway(config(upstream, "5m"))  # seed 000's duration syntax
    key = gw.create_key("lists")
    assert listed(gw, key) == ["lst/pinned", "lst/alpha", "lst/beta"]
    calls = state.calls
    state.models = ["delta"]
    assert listed(gw, key) == ["lst/pinned", "lst/alpha", "lst/beta"]  # served from memory
    assert state.calls == calls
    assert listed(gw, key, "&refresh=true") == ["lst/pinned", "lst/delta"]
    assert state.calls == calls + 1
    # ?gateway= is the seed's synonym; refreshing every provider works too.
    r = httpx.get(f"{gw.base_url}/models?gateway=lst", headers={"authorization": f"Bearer {key}"})
    assert [m["id"] for m in r.json()["data"]] == ["lst/pinned", "lst/delta"]
    state.status = 500
    assert listed(gw, key, "&refresh=true") == ["lst/pinned", "lst/delta"]
    assert state.calls == calls + 2
    r = httpx.get(f"{gw.base_url}/models?refresh=true")  # refreshing needs a valid key
    assert r.status_code == 401 and state.calls == calls + 2
