"""CORS on the proxy routes: a browser's preflight and the headers of the actual call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmrelay.config import load_settings
from llmrelay.config_error import ConfigError
from llmrelay.mock_upstream import MockUpstream
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config

APP = "https://app.example.com"
PREFLIGHT = {
    "origin": APP,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-stainless-os",
}


@pytest.fixture(scope="module")
async def cors_gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config = {
        **base_config(upstream),
        "cors_origins": [APP, "https://*.tenant.example.org", "http://localhost:5173"],
        "cors_max_age": 300,
    }
    gateway = InProcessGateway(tmp_path_factory.mktemp("cors"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def test_preflight_from_an_allowed_origin_is_204_with_the_route_methods(
    cors_gw: InProcessGateway,
) -> None:
    r = await cors_gw.client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert r.headers["access-control-allow-headers"] == PREFLIGHT["access-control-request-headers"]
    assert r.headers["access-control-max-age"] == "300"
    assert "origin" in r.headers["vary"].lower()
    assert "access-control-allow-credentials" not in r.headers
    models = await cors_gw.client.options(
        "/v1/models", headers={**PREFLIGHT, "access-control-request-method": "GET"}
    )
    assert models.status_code == 204
    assert models.headers["access-control-allow-methods"] == "GET, OPTIONS"


async def test_wildcard_subdomain_and_port_match_exactly(cors_gw: InProcessGateway) -> None:
    for origin, allowed in (
        ("https://a.tenant.example.org", True),
        ("https://deep.a.tenant.example.org", True),
        ("https://tenant.example.org", False),  # the parent itself is not a subdomain
        ("http://a.tenant.example.org", False),  # scheme differs
        ("https://a.tenant.example.org:8443", False),  # port differs
        ("https://eviltenant.example.org", False),
        ("http://localhost:5173", True),
        ("http://localhost:5174", False),
        ("null", False),
    ):
        r = await cors_gw.client.options("/v1/messages", headers={**PREFLIGHT, "origin": origin})
        assert (r.status_code == 204) is allowed, (origin, r.status_code)
        if not allowed:
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers
            # The endpoint's own error shape: Anthropic's under /v1/messages.
            assert r.json()["type"] == "error"
            assert r.json()["error"]["type"] == "permission_error"


async def test_refused_preflight_uses_the_openai_shape_elsewhere(cors_gw: InProcessGateway) -> None:
    r = await cors_gw.client.options(
        "/v1/chat/completions", headers={**PREFLIGHT, "origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "cors_origin_not_allowed"


async def test_odd_requested_headers_get_the_default_list(cors_gw: InProcessGateway) -> None:
    r = await cors_gw.client.options(
        "/v1/chat/completions",
        headers={**PREFLIGHT, "access-control-request-headers": "x-a; (bad)"},
    )
    assert r.status_code == 204
    allowed = r.headers["access-control-allow-headers"]
    assert "authorization" in allowed and "bad" not in allowed


async def test_actual_call_carries_allow_origin_and_exposed_headers(
    cors_gw: InProcessGateway,
) -> None:
    key = await cors_gw.create_key("browser-app")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    r = await cors_gw.post("/v1/chat/completions", body, key, origin=APP)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    # An error answer can be read by the page too (it tells the user what went wrong).
    bad = await cors_gw.post("/v1/chat/completions", body, "sk-wrong", origin=APP)
    assert bad.status_code == 401
    assert bad.headers["access-control-allow-origin"] == APP
    # Another origin gets no CORS header: the browser keeps the answer from the page.
    other = await cors_gw.post("/v1/chat/completions", body, key, origin="https://evil.example")
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_without_cors_origins_a_preflight_is_still_405(gw: InProcessGateway) -> None:
    r = await gw.client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert r.status_code == 405
    assert "access-control-allow-origin" not in r.headers


def test_bad_origins_are_refused_at_start_with_the_entry_named() -> None:
    for entry in ("app.example.com", "https://app.example.com/path", "ftp://x.example"):
        with pytest.raises(ConfigError, match=r"cors_origins\[1\]"):
            load_settings(env={}, overrides={"cors_origins": ["*", entry]})
    with pytest.raises(ConfigError, match="cors_max_age"):
        load_settings(env={}, overrides={"cors_max_age": -1})


def test_env_takes_a_comma_separated_list() -> None:
    settings = load_settings(
        env={"LLMRELAY_CORS_ORIGINS": "https://a.example, http://localhost:3000 ,"}
    )
    assert settings.cors_origins == ["https://a.example", "http://localhost:3000"]
