"""Every value a client or an upstream controls is bounded where it enters a row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from llmrelay.store import database, tables
from llmrelay.store.bounds import (
    JSON_LIMIT,
    TEXT_LIMIT,
    clean_int,
    clean_json,
    clean_row,
    clean_text,
)
from llmrelay.store.bulk import insert_rows
from llmrelay.store.schema import RequestRow, ResponseRow


def test_text_loses_nul_bytes_and_invalid_text_and_is_cut_to_length() -> None:
    assert clean_text("a\x00b", 10) == "ab"
    assert clean_text("x\ud800y", 10) == "x?y"
    cut = clean_text("m" * 10_000, 300)
    assert len(cut) == 300 and cut.endswith("…")
    assert clean_text("short", 300) == "short"


def test_integers_are_clamped_to_the_column_range() -> None:
    assert clean_int(10**30, (-(2**31), 2**31 - 1)) == 2**31 - 1
    assert clean_int("12", (0, 100)) == 12
    assert clean_int(object(), (0, 100)) == 0


def test_json_is_serialisable_and_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    assert isinstance(clean_json(deep), list)  # nesting cut, still storable
    assert clean_json([{"error": "x\ud800"}]) == [{"error": "x?"}]
    assert clean_json({1: "a"}) == {"1": "a"}
    big = clean_json([{"message": "e" * (JSON_LIMIT * 2)}])
    assert big == {"truncated": True, "bytes": pytest.approx(JSON_LIMIT * 2, rel=0.01)}


def test_every_string_column_of_a_row_is_bounded_by_its_declared_length() -> None:
    table = RequestRow.__table__
    row = clean_row(
        table,
        {
            "model": "m" * 10_000,
            "route": "r" * 500,
            "request_id": "i\x00" * 300,
            "body": "b" * (TEXT_LIMIT + 10),
            "status_code": 10**12,
        },
    )
    assert len(row["model"]) == table.c.model.type.length
    assert len(row["route"]) == table.c.route.type.length
    assert "\x00" not in row["request_id"]
    assert len(row["body"]) == TEXT_LIMIT
    assert row["status_code"] == 2**31 - 1


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[database.Database]:
    if request.param == "postgres":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_db")
        url = make()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    eng = database.create_engine(url)
    await database.migrate(eng)
    yield eng
    await eng.dispose()


async def test_hostile_values_are_inserted_not_refused(engine: database.Database) -> None:
    """On PostgreSQL each of these values alone made the batch fail (and retry forever)."""
    now = datetime.now(UTC)
    deep: Any = ["x"]
    for _ in range(300):
        deep = [deep]
    hostile = {
        "id": "a" * 32,
        "request_id": "x" * 5000,
        "created_at": now,
        "route": "/v1/" * 100,
        "method": "POST",
        "model": "m" * 10_000,
        "provider": "p\x00",
        "upstream_model": "\ud83d",
        "api_key_id": None,
        "stream": False,
        "status_code": 200,
        "client_ip": "1" * 200,
        "user_agent": "ua\x00" * 500,
        "body": None,
        "attempts": [{"error": "nul\x00 and \ud800", "deep": deep}],
        "cost_nanos": 10**25,
    }
    response = {
        "id": "a" * 32,
        "request_id": "a" * 32,
        "created_at": now,
        "status_code": 200,
        "latency_ms": float("nan"),
        "overhead_ms": float("inf"),
        "prompt_tokens": 10**12,
        "completion_tokens": -(10**12),
        "total_tokens": 5,
        "cached_tokens": 0,
        "finish_reason": "f" * 1000,
        "error_type": "\x00" * 200,
        "error_message": "e\x00",
        "body": None,
        "bytes_out": 10**30,
    }
    async with engine.begin() as conn:
        await insert_rows(conn, tables.requests, [hostile])
        await insert_rows(conn, tables.responses, [response])
    async with engine.connect() as conn:
        model, agent = (await conn.execute(select(RequestRow.model, RequestRow.user_agent))).one()
        tokens = await conn.scalar(select(ResponseRow.prompt_tokens))
    assert len(model) == 300 and model.endswith("…")
    assert "\x00" not in agent
    assert tokens == 2**31 - 1
