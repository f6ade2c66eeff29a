"""The core gateway, run once on SQLite and once on PostgreSQL, in front of the mock upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess, free_port


def core_config(upstream: MockUpstream) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return {
        "max_body_bytes": 65536,
        "metrics_key_labels": True,  # test_prometheus_metrics reads the per-key series
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret-key-123",
            },
            {
                "name": "slow",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret-key-123",
                "timeout": 0.5,
            },
            {
                "name": "dead",
                "type": "openai_compatible",
                "base_url": dead,
                "api_key": "x",
                "connect_timeout": 1,
            },
        ],
        "models": [{"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"}],
        "aliases": {"my-gpt4": "up/gpt-4"},
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def core_gw(
    request: pytest.FixtureRequest,
    upstream: MockUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    config = core_config(upstream)
    if request.param == "postgres":
        make_db: Callable[[], str] = request.getfixturevalue("make_postgres_db")
        config["database_url"] = make_db()
    gw = GatewayProcess(tmp_path_factory.mktemp(f"core-{request.param}"), config)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def core_key(core_gw: GatewayProcess) -> str:
    return core_gw.create_key("core-key")
