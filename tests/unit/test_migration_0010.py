"""Migration 0010 on SQLite and PostgreSQL: an expiry kept in a key's metadata moves to
``api_keys.expires_at`` (in UTC), and the daily rollup's probe calls are split into
rows of their own; the downgrade puts both back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from llmrelay.store import database
from tests.unit.test_migration_0008 import _to

KEY = (
    "INSERT INTO api_keys (id, name, key_hash, key_prefix, enabled, metadata, created_at)"
    " VALUES (:id, :id, :id, '', true, :meta, :at)"
)
USAGE = (
    "INSERT INTO usage_records (id, created_at, api_key_id, team_id, route, model, provider,"
    " stream, status_code, prompt_tokens, completion_tokens, total_tokens, cached_tokens,"
    " cache_write_tokens, usage_estimated, cost_nanos, total_cost_usd, cache_hit,"
    " cost_saved_nanos, probe) VALUES (:id, :at, 'k1', NULL, 'chat', 'm', 'p', false, 200,"
    " 3, 4, 7, 0, 0, false, 10, 0.00000001, false, 0, :probe)"
)
DAILY = (
    "INSERT INTO usage_daily (day, api_key_id, team_id, model, provider, requests,"
    " prompt_tokens, completion_tokens, cost_nanos, cache_hits, errors, updated_at)"
    " VALUES (:day, 'k1', '', 'm', 'p', :n, :n3, :n4, :n10, 0, 0, :at)"
)


def _at(engine: Any, value: str) -> Any:
    return datetime.fromisoformat(value) if engine.dialect.name == "postgresql" else value


async def _check(url: str) -> None:
    engine = database.create_engine(url)
    pg = engine.dialect.name == "postgresql"
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0009_merge"))
        async with engine.begin() as conn:
            now = _at(engine, "2026-12-01 00:00:00+00:00")
            metas = {
                "k1": {"owner": "a", "llmrelay.expires_at": "2027-01-01T02:00:00+02:00"},
                "k2": {"llmrelay.expires_at": "2027-02-01T00:00:00"},
                "k3": {"llmrelay.expires_at": "not a time", "team": "x"},
                "k4": {"owner": "b"},
            }
            for key_id, meta in metas.items():
                await conn.execute(text(KEY), {"id": key_id, "meta": json.dumps(meta), "at": now})
            # Two plain calls and one probe on 2026-12-01; the rollup counted all three.
            for i, probe in enumerate((False, False, True)):
                await conn.execute(
                    text(USAGE),
                    {"id": f"r{i}", "at": _at(engine, "2026-12-01 10:00:00+00:00"), "probe": probe},
                )
            # One day where only a probe ran.
            await conn.execute(
                text(USAGE),
                {"id": "r9", "at": _at(engine, "2026-12-02 10:00:00+00:00"), "probe": True},
            )
            for day, n in (("2026-12-01", 3), ("2026-12-02", 1)):
                await conn.execute(
                    text(DAILY),
                    {
                        "day": datetime.fromisoformat(day).date() if pg else day,
                        "n": n,
                        "n3": 3 * n,
                        "n4": 4 * n,
                        "n10": 10 * n,
                        "at": now,
                    },
                )
        async with engine.begin() as conn:
            await conn.run_sync(_to("head"))
        async with engine.connect() as conn:
            keys = (
                await conn.execute(
                    text("SELECT id, metadata, expires_at FROM api_keys ORDER BY id")
                )
            ).all()
            daily = (
                await conn.execute(
                    text(
                        "SELECT day, probe, requests, prompt_tokens, cost_nanos FROM usage_daily"
                        " ORDER BY day, probe"
                    )
                )
            ).all()
        found = {
            r[0]: (
                json.loads(r[1]) if isinstance(r[1], str) else r[1],
                None if r[2] is None else _utc(r[2]),
            )
            for r in keys
        }
        assert found == {
            "k1": ({"owner": "a"}, datetime(2027, 1, 1, tzinfo=UTC)),
            "k2": (None, datetime(2027, 2, 1, tzinfo=UTC)),
            "k3": ({"team": "x"}, None),
            "k4": ({"owner": "b"}, None),
        }
        assert [(str(d), bool(p), *rest) for d, p, *rest in daily] == [
            ("2026-12-01", False, 2, 6, 20),
            ("2026-12-01", True, 1, 3, 10),
            ("2026-12-02", True, 1, 3, 10),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(_to("-0009_merge"))
        async with engine.connect() as conn:
            meta = (
                await conn.execute(text("SELECT metadata FROM api_keys WHERE id = 'k1'"))
            ).scalar()
            back = (
                await conn.execute(text("SELECT day, requests FROM usage_daily ORDER BY day"))
            ).all()
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert datetime.fromisoformat(meta["llmrelay.expires_at"]) == datetime(
            2027, 1, 1, tzinfo=UTC
        )
        assert [(str(d), n) for d, n in back] == [("2026-12-01", 3), ("2026-12-02", 1)]
        async with engine.begin() as conn:
            await conn.run_sync(_to("head"))  # and up again
    finally:
        await engine.dispose()


def _utc(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def test_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.usefixtures("postgres_server")
async def test_postgresql(make_postgres_db: Callable[[], str]) -> None:
    await _check(make_postgres_db())
