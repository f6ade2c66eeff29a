"""Migration 0008_admin_data on SQLite and PostgreSQL: the daily rollup is filled from
the usage rows written before it, and the downgrade returns to 0007's schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text

from llmrelay.store import database


def _to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        from alembic import command

        cfg = database._alembic_config(connection)
        if revision.startswith("-"):
            command.downgrade(cfg, revision[1:])
        else:
            command.upgrade(cfg, revision)

    return run


USAGE = (
    "INSERT INTO usage_records (id, created_at, api_key_id, team_id, route, model, provider,"
    " stream, status_code, prompt_tokens, completion_tokens, total_tokens, cached_tokens,"
    " cache_write_tokens, usage_estimated, cost_nanos, total_cost_usd, cache_hit,"
    " cost_saved_nanos) VALUES (:id, :at, 'k1', NULL, 'chat', 'm', 'p', false, :status,"
    " 3, 4, 7, 0, 0, false, 10, 0.00000001, :hit, 0)"
)


async def _check(url: str) -> None:
    engine = database.create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0007_admin"))
        async with engine.begin() as conn:
            rows: list[dict[str, Any]] = [
                {"id": "r1", "at": "2026-11-30 23:59:00+00:00", "status": 200, "hit": False},
                {"id": "r2", "at": "2026-12-01 00:01:00+00:00", "status": 200, "hit": True},
                {"id": "r3", "at": "2026-12-01 10:00:00+00:00", "status": 500, "hit": False},
            ]
            for row in rows:
                params = dict(row)
                if engine.dialect.name == "postgresql":  # asyncpg binds datetimes only
                    params["at"] = datetime.fromisoformat(row["at"])
                await conn.execute(text(USAGE), params)
        async with engine.begin() as conn:
            await conn.run_sync(_to("head"))
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT day, team_id, requests, prompt_tokens, cost_nanos, cache_hits,"
                        " errors FROM usage_daily ORDER BY day"
                    )
                )
            ).all()
        assert [(str(r[0]), *r[1:]) for r in found] == [
            ("2026-11-30", "", 1, 3, 10, 0, 0),
            ("2026-12-01", "", 2, 6, 20, 1, 1),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(_to("-0007_admin"))
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "usage_daily" not in tables
    finally:
        await engine.dispose()


async def test_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.usefixtures("postgres_server")
async def test_postgresql(make_postgres_db: Callable[[], str]) -> None:
    await _check(make_postgres_db())
