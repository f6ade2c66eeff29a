"""The key API on PostgreSQL, with two gateways sharing the database: a change made
through one applies on the other within ``key_cache_ttl``; a bound key's credential
sealed by one is opened by the other (same master key)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.admin.conftest import MASTER, Admin, error_of
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config

TTL = 0.5


@pytest.fixture
async def pair(
    upstream: MockUpstream, make_postgres_db: Callable[[], str], tmp_path: Path
) -> AsyncIterator[tuple[InProcessGateway, InProcessGateway]]:
    config: dict[str, Any] = {
        **base_config(upstream),
        "master_key": MASTER,
        "database_url": make_postgres_db(),
        "key_cache_ttl": TTL,
        "key_negative_cache_ttl": TTL,
    }
    a = await InProcessGateway(tmp_path / "a", config).start()
    b = await InProcessGateway(tmp_path / "b", config).start()
    yield a, b
    await b.stop()
    await a.stop()


async def chat(gw: InProcessGateway, key: str) -> None:
    client = openai.AsyncOpenAI(
        base_url="http://gateway.test/v1", api_key=key, http_client=gw.client, max_retries=0
    )
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )


async def test_key_api_on_postgres_across_two_instances(
    pair: tuple[InProcessGateway, InProcessGateway], mock: MockUpstream
) -> None:
    a, b = pair
    admin = Admin(a.client, MASTER)
    body = {"name": "pg-key", "provider": "up", "real_api_key": "pg-bound-credential-5566"}
    made = await admin.post("/admin/virtual-keys", body, **{"idempotency-key": "pg-1"})
    again = await admin.post("/admin/virtual-keys", body, **{"idempotency-key": "pg-1"})
    assert made.status_code == 201, made.text
    assert again.json() == made.json()
    key = made.json()["virtual_key"]
    await chat(b, key)  # made on a, used on b: b opens the credential a sealed
    assert mock.requests[-1].headers["authorization"] == "Bearer pg-bound-credential-5566"
    team = await admin.post("/admin/teams", {"name": "pg-team", "rate_limit": 100})
    assert team.status_code == 201, team.text
    patched = await admin.patch(f"/admin/virtual-keys/{made.json()['id']}", {"team": "pg-team"})
    assert patched.json()["team_id"] == team.json()["id"]
    error_of(await admin.delete("/admin/teams/pg-team"), 409)
    rotated = await admin.put(
        f"/admin/virtual-keys/{made.json()['id']}/rotate", {"grace_seconds": 60}
    )
    new = rotated.json()["virtual_key"]
    await chat(b, new)
    await chat(b, key)  # the old secret, in its grace period, on the other instance
    await admin.patch(f"/admin/virtual-keys/{made.json()['id']}", {"status": "disabled"})
    await asyncio.sleep(TTL * 3)
    with pytest.raises(openai.AuthenticationError):
        await chat(b, new)
    listed = await Admin(b.client, MASTER).get("/admin/virtual-keys", team="pg-team")
    assert listed.json()["data"][0]["status"] == "disabled"
    assert "pg-bound-credential-5566" not in listed.text and new not in listed.text
