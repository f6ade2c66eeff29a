"""Provider rows: configured providers stored (secrets sealed), DB-only rows read back."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from llmrelay.config import Settings
from llmrelay.providers.config_types import BedrockConfig, parse_provider
from llmrelay.providers.stored import sync_providers
from llmrelay.store import database
from llmrelay.store.credentials import CredentialBox
from llmrelay.store.schema import Provider as Row


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[database.Database]:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    await database.migrate(engine)
    yield engine
    await engine.dispose()


def settings(*entries: dict[str, Any]) -> Settings:
    return Settings(providers=[parse_provider(e) for e in entries], auto_providers=False)


async def test_configured_providers_are_stored_with_sealed_secrets(db: database.Database) -> None:
    sessions = database.sessionmaker(db)
    box = CredentialBox("s" * 32)
    s = settings(
        {
            "name": "b",
            "type": "bedrock",
            "region": "us-west-2",
            "aws_access_key_id": "AKID",
            "aws_secret_access_key": "top-secret",
            "drop_params": True,
        },
        {"name": "g", "type": "groq", "api_key": "gsk-1", "models": ["llama"]},
    )
    assert await sync_providers(db, box, s, {}) == []
    async with sessions() as session:
        rows = {r.name: r for r in (await session.scalars(select(Row))).all()}
    assert "top-secret" not in json.dumps(rows["b"].config)
    assert rows["b"].config["region"] == "us-west-2" and rows["b"].provider_type == "bedrock"
    assert box.open(rows["b"].encrypted_credentials)["aws_secret_access_key"] == "top-secret"
    assert rows["g"].config["base_url"] == "https://api.groq.com/openai/v1"
    assert box.open(rows["g"].encrypted_credentials) == {"api_key": "gsk-1"}


async def test_rows_the_config_does_not_name_come_back_as_typed_configs(
    db: database.Database, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = database.sessionmaker(db)
    box = CredentialBox("s" * 32)
    await sync_providers(
        db,
        box,
        settings(
            {
                "name": "b",
                "type": "bedrock",
                "region": "eu-west-1",
                "aws_access_key_id": "AKID",
                "aws_secret_access_key": "sec",
            }
        ),
        {},
    )
    async with sessions() as session, session.begin():
        row = (await session.scalars(select(Row))).one()
        row.source = "db"  # as if added by an operator, not by the config
        session.add(Row(name="nosuch", provider_type="what", config={}, source="db"))
        session.add(Row(name="off", provider_type="groq", config={}, source="db", enabled=False))
    with caplog.at_level(logging.ERROR, logger="llmrelay"):
        extra = await sync_providers(db, box, settings(), {})
    assert len(extra) == 1 and isinstance(extra[0], BedrockConfig)
    assert (extra[0].name, extra[0].region, extra[0].aws_secret_access_key) == (
        "b",
        "eu-west-1",
        "sec",
    )
    assert "provider nosuch skipped" in caplog.text and "unknown provider type" in caplog.text
