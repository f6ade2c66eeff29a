"""Fixtures of the in-process tier: one application per test module (start-up runs the
migrations, which is most of a gateway's start cost), in front of the mock upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.inprocess.app_client import InProcessGateway


def base_config(upstream: MockUpstream) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret-key-123",
            },
            {
                "name": "claude",
                "type": "anthropic",
                "base_url": upstream.base_url,
                "api_key": "sk-ant-test",
            },
        ],
        "models": [{"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"}],
    }


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    gateway = InProcessGateway(tmp_path_factory.mktemp("inprocess"), base_config(upstream))
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture(scope="module")
async def key(gw: InProcessGateway) -> str:
    return await gw.create_key("inprocess-key")
