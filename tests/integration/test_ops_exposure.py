"""Who may read ``/metrics`` and the detail of ``/health/ready`` (THREAT_MODEL.md)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

TOKEN = "metrics-token-0123456789"
MASTER = "master-key-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def chat(gw: GatewayProcess, key: str) -> httpx.Response:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        gw.base_url + "/chat/completions",
        content=orjson.dumps(body),
        headers=bearer(key),
        timeout=20,
    )


def test_metrics_and_readiness_detail_need_the_token_or_master_key(
    start_gateway: Callable[..., GatewayProcess], mock: MockUpstream
) -> None:
    """Master key and metrics token set -> /metrics 401 without one of them, readiness
    without one answers its status only; /health stays open."""
    gw = start_gateway({"master_key": MASTER, "metrics_token": TOKEN})
    key = gw.create_key("secretive")
    assert chat(gw, key).status_code == 200
    for headers in ({}, bearer("wrong-token-0123456789"), bearer(key), {"authorization": TOKEN}):
        r = httpx.get(gw.url + "/metrics", headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert "secretive" not in r.text
        ready = httpx.get(gw.url + "/health/ready", headers=headers, timeout=10)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    for token in (TOKEN, MASTER):  # Prometheus: authorization: Bearer <token>
        r = httpx.get(gw.url + "/metrics", headers=bearer(token), timeout=10)
        assert r.status_code == 200 and "llmrelay_" in r.text
        detail = httpx.get(gw.url + "/health/ready", headers=bearer(token), timeout=10).json()
        assert detail["status"] == "ready" and detail["database"]["ok"] is True
        assert {"providers", "circuits", "keys", "route_configs"} <= set(detail)
    assert httpx.get(gw.url + "/health", timeout=10).status_code == 200


def test_a_master_key_alone_guards_metrics(start_gateway: Callable[..., GatewayProcess]) -> None:
    gw = start_gateway({"master_key": MASTER})
    assert httpx.get(gw.url + "/metrics", timeout=10).status_code == 401
    assert httpx.get(gw.url + "/metrics", headers=bearer(MASTER), timeout=10).status_code == 200
    assert set(httpx.get(gw.url + "/health/ready", timeout=10).json()) == {"status"}
