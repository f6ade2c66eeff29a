"""Fixtures of the admin API tests: one in-process gateway with a master key per test
module, in front of the mock upstream; ``admin`` sends the master key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config

MASTER = "sk-master-admin-test-5544"


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {**base_config(upstream), "master_key": MASTER}
    gateway = InProcessGateway(tmp_path_factory.mktemp("admin"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


class Admin:
    """The admin API as one principal sees it."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"authorization": f"Bearer {token}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers)

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.headers, **headers})

    async def put(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.client.put(path, json=body, headers={**self.headers, **headers})

    async def patch(self, path: str, body: Any) -> httpx.Response:
        return await self.client.patch(path, json=body, headers=self.headers)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(path, headers=self.headers)


@pytest.fixture(scope="module")
def admin(gw: InProcessGateway) -> Admin:
    return Admin(gw.client, MASTER)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of an admin answer, checked for the gateway's error shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])
