"""Seed 000 runs unchanged against llmrelay's PostgreSQL schema, and a gateway started
on the result serves the seed's own curl requests.

What the test adds to the seed, and why:

- ``UPDATE providers SET config = ...`` points the seed's ``openai-main`` provider at
  the mock upstream instead of ``https://api.openai.com/v1`` (no real key, no network).
- ``key_any_shape: true``: the seed's key ``test-key-12345`` is not shaped like the keys
  llmrelay makes, which are refused without a lookup unless this is set.
- ``route_by_catalog: true``: the seed calls the bare ``gpt-4``, which its gateway
  routes by the catalog row's ``litellm_provider`` (``openai`` -> the one provider of
  type ``openai``); llmrelay does so only when this is set.

The seed's "Unknown Model" curl has a typo (``-H "Content-Type": application/json"``);
the test checks it is the only broken header and sends the request without it. "Budget
Exceeded" needs $10 of spend at the seed's prices and is not run here (budgets are
tested in tests/integration/test_governance_http.py); the Redis ``Monitoring`` commands
name another gateway's keys and are not llmrelay's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from llmrelay.mock_upstream import MockUpstream
from llmrelay.store import database
from tests.admin import seed_000
from tests.admin.conftest import MASTER, Admin, error_of
from tests.inprocess.app_client import InProcessGateway

SECTIONS = seed_000.sections(seed_000.text())
KEY = "test-key-12345"


@pytest.fixture(scope="module")
async def seeded(make_postgres_db: Callable[[], str], upstream: MockUpstream) -> AsyncIterator[str]:
    """A fresh migrated database with seed 000's setup SQL run in it, unchanged."""
    url = make_postgres_db()
    await database.migrate_url(url)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        for statement in seed_000.sql_statements(SECTIONS["3. Setup Test Data"]):
            await conn.execute(statement)
        await conn.execute(
            "UPDATE providers SET config = $1 WHERE name = 'openai-main'",
            f'{{"base_url": "{upstream.base_url}"}}',
        )
    finally:
        await conn.close()
    yield dsn


@pytest.fixture(scope="module")
async def gw(
    seeded: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {
        "database_url": seeded.replace("postgresql://", "postgresql+asyncpg://"),
        "master_key": MASTER,
        "key_any_shape": True,
        # Seed 000's gateway routes the bare ``gpt-4`` by its catalog row's provider.
        "route_by_catalog": True,
        "mock_provider": False,
    }
    gateway = InProcessGateway(tmp_path_factory.mktemp("seed000"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def send(gw: InProcessGateway, curl: seed_000.Curl) -> httpx.Response:
    return await gw.client.request(curl.method, curl.path, json=curl.body, headers=curl.headers)


def only(section: str) -> seed_000.Curl:
    found = seed_000.curl_requests(SECTIONS[section])
    assert len(found) == 1, found
    return found[0]


async def rows(seeded: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(seeded)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def test_the_seed_is_read_from_its_file() -> None:
    setup = seed_000.sql_statements(SECTIONS["3. Setup Test Data"])
    assert [m.group(1) for s in setup if (m := re.search(r"INSERT INTO (\w+)", s))] == [
        "providers",
        "api_keys",
        "models",
        "model_aliases",
    ]
    assert all("psql " not in s for s in setup)


async def test_the_seeds_requests_are_served(
    gw: InProcessGateway, upstream: MockUpstream, seeded: str
) -> None:
    basic = only("Basic Chat Completion")
    r = await send(gw, basic)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
    assert answer["usage"]["total_tokens"] > 0
    # The credential the seed stored in clear reached the upstream, and is sealed now.
    assert (
        upstream.last_request.headers["authorization"] == "Bearer sk-proj-YOUR_OPENAI_API_KEY_HERE"
    )
    sealed = await rows(seeded, "SELECT encrypted_credentials FROM providers")
    assert "sk-proj" not in sealed[0][0] and not sealed[0][0].startswith("{")

    r = await send(gw, only("Streaming Chat Completion"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert '"object":"chat.completion.chunk"' in r.text and r.text.rstrip().endswith("data: [DONE]")

    r = await send(gw, only("Using Model Alias"))
    assert r.status_code == 200, r.text
    assert upstream.last_request.body["model"] == "gpt-4"

    health = await send(gw, only("Health Check"))
    assert health.status_code == 200 and health.text == "OK"

    err = error_of(await send(gw, only("Invalid API Key")), 401)
    assert err["type"] == "invalid_request_error" and err["message"] == "invalid API key"
    error_of(await send(gw, only("Missing Authorization Header")), 401)

    unknown = only("Unknown Model")
    assert unknown.broken_headers == ["Content-Type"]  # the seed's typo
    err = error_of(await send(gw, unknown), 400)
    assert err["message"] == "unknown model: gpt-99" and err["code"] == "model_not_found"


async def test_the_seeds_database_checks_run_on_what_the_gateway_wrote(
    gw: InProcessGateway, seeded: str
) -> None:
    r = await send(gw, only("Basic Chat Completion"))
    assert r.status_code == 200
    usage_sql, monthly_sql, providers_sql = seed_000.sql_statements(SECTIONS["Check Database"])
    for _ in range(200):
        found = await rows(seeded, monthly_sql)
        if found:
            break
        await asyncio.sleep(0.05)
    by_key = {r["name"]: r for r in await rows(seeded, usage_sql)}
    assert by_key["Test Key"]["total_requests"] >= 1
    assert by_key["Test Key"]["total_cost"] > 0  # priced at the seed's own gpt-4 row
    assert found and found[0]["name"] == "Test Key" and found[0]["total_requests"] >= 1
    listed = await rows(seeded, providers_sql)
    assert [(p["name"], p["provider_type"], p["enabled"]) for p in listed] == [
        ("openai-main", "openai", True)
    ]
    # The daily rollup and the admin reports on PostgreSQL (to_char for months).
    admin = Admin(gw.client, MASTER)
    for _ in range(200):  # the batches of the calls above may still be landing
        month = (await admin.get("/admin/usage", group="month", by="key")).json()["data"]
        summary = await rows(seeded, monthly_sql)
        if month[0]["requests"] == summary[0]["total_requests"]:
            break
        await asyncio.sleep(0.05)
    assert month[0]["requests"] == summary[0]["total_requests"]
    budgets = (await admin.get("/admin/usage/budgets")).json()["data"]
    assert budgets[0]["name"] == "Test Key" and budgets[0]["monthly_budget_usd"] == "10.000000000"
    assert budgets[0]["limit_state"] == "ok"
    listed = (await admin.get("/admin/requests", status="200")).json()
    assert listed["total"] >= 1 and listed["data"][0]["model"] in {"gpt-4", "my-gpt4"}
    checks = seed_000.sql_statements(SECTIONS["Requests Failing"])
    assert len(checks) == 3
    model_check, provider_check, _credential_update = checks
    assert (await rows(seeded, model_check))[0]["litellm_provider"] == "openai"
    assert len(await rows(seeded, provider_check)) == 1


async def test_the_seeds_credential_update_is_sealed_again(
    gw: InProcessGateway, upstream: MockUpstream, seeded: str
) -> None:
    """Troubleshooting: 'Update credentials if needed (app will decrypt/re-encrypt)'."""
    credential_update = seed_000.sql_statements(SECTIONS["Requests Failing"])[2]
    conn = await asyncpg.connect(seeded)
    try:
        await conn.execute(credential_update)
    finally:
        await conn.close()
    admin = Admin(gw.client, MASTER)
    r = await admin.post("/admin/providers/reload", {})
    assert r.status_code == 200 and r.json()["changed"] == ["openai-main"], r.text
    assert (await send(gw, only("Basic Chat Completion"))).status_code == 200
    assert upstream.last_request.headers["authorization"] == "Bearer sk-proj-YOUR_NEW_KEY"
    sealed = await rows(seeded, "SELECT encrypted_credentials FROM providers")
    assert "YOUR_NEW_KEY" not in sealed[0][0]
    shown = await admin.get("/admin/providers/openai-main")
    assert shown.json()["api_key_set"] and "YOUR_NEW_KEY" not in shown.text


async def test_the_seeds_rate_limit_applies(gw: InProcessGateway) -> None:
    """Last in this module: it spends the key's minute of requests."""
    flood = only("Rate Limit Exceeded")
    assert flood.repeat == 101 and flood.body["max_tokens"] == 1
    answers = await asyncio.gather(*(send(gw, flood) for _ in range(flood.repeat)))
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) <= 100 and codes.count(429) >= 1  # 100 requests per minute
