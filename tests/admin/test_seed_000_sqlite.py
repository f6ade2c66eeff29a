"""Seed 000's setup SQL on SQLite: the same statements, with only what SQLite spells
differently swapped (``gen_random_uuid()``; ``encode(sha256('…'::bytea), 'hex')``,
SQLite having neither ``::`` casts nor a SHA-256 function, becomes the hash itself);
the columns the seed leaves out are filled by the server defaults migration 0010 gives
SQLite, and a gateway started on the result serves the seed's requests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from llmrelay.mock_upstream import MockUpstream
from llmrelay.store import database
from tests.admin import seed_000
from tests.admin.conftest import MASTER
from tests.inprocess.app_client import InProcessGateway

SECTIONS = seed_000.sections(seed_000.text())


def for_sqlite(statement: str) -> str:
    """Seed 000's PostgreSQL-only spellings in SQLite's."""
    statement = statement.replace("gen_random_uuid()", "lower(hex(randomblob(16)))")
    return re.sub(
        r"encode\(sha256\('([^']*)'::bytea\), 'hex'\)",
        lambda m: f"'{hashlib.sha256(m[1].encode()).hexdigest()}'",
        statement,
    )


@pytest.fixture
async def gw(upstream: MockUpstream, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'llmrelay.db'}"
    engine = database.create_engine(url)
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            for statement in seed_000.sql_statements(SECTIONS["3. Setup Test Data"]):
                await conn.execute(text(for_sqlite(statement)))
            await conn.execute(
                text("UPDATE providers SET config = :c WHERE name = 'openai-main'"),
                {"c": f'{{"base_url": "{upstream.base_url}"}}'},
            )
    finally:
        await engine.dispose()
    config: dict[str, Any] = {
        "master_key": MASTER,
        "key_any_shape": True,
        "route_by_catalog": True,
        "mock_provider": False,
    }
    gateway = InProcessGateway(tmp_path, config)
    assert gateway.database_url == url
    await gateway.start()
    yield gateway
    await gateway.stop()


def test_only_postgresql_spellings_are_swapped() -> None:
    for statement in seed_000.sql_statements(SECTIONS["3. Setup Test Data"]):
        swapped = for_sqlite(statement)
        assert "gen_random_uuid" not in swapped and "::" not in swapped
        # Everything else is the seed's text as written.
        assert re.sub(r"'[0-9a-f]{64}'|lower\(hex\(randomblob\(16\)\)\)", "X", swapped) == re.sub(
            r"encode\(sha256\('[^']*'::bytea\), 'hex'\)|gen_random_uuid\(\)", "X", statement
        )


async def test_seed_000_on_sqlite_then_its_requests(
    gw: InProcessGateway, upstream: MockUpstream
) -> None:
    rows = await gw.query(
        "SELECT p.source, k.key_prefix, k.created_at IS NOT NULL, m.updated_at IS NOT NULL "
        "FROM providers p, api_keys k, models m"
    )
    assert rows == [("db", "", 1, 1)]
    for section in ("Basic Chat Completion", "Using Model Alias"):
        (curl,) = seed_000.curl_requests(SECTIONS[section])
        r = await gw.client.request(curl.method, curl.path, json=curl.body, headers=curl.headers)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
    assert upstream.last_request.body["model"] == "gpt-4"  # the alias's target
    assert (
        upstream.last_request.headers["authorization"] == "Bearer sk-proj-YOUR_OPENAI_API_KEY_HERE"
    )
    sealed = await gw.query("SELECT encrypted_credentials FROM providers")
    assert "sk-proj" not in sealed[0][0]  # sealed in place when the gateway read it
    await gw.wait_rows("SELECT 1 FROM usage_records WHERE total_cost_usd > 0", 2)
