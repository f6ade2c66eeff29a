"""The tables of ``store/tables.py`` are what the migrations create, on SQLite and on
PostgreSQL (Alembic's autogenerate comparison of a database migrated to head against the
metadata finds nothing to change), and the ORM classes map exactly those tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String
from sqlalchemy.engine import Connection

from llmrelay.store import database, schema, tables
from llmrelay.store.tables import ID_LENGTH


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    found = []
    for diff in compare_metadata(context, tables.metadata):
        # Migration 0008 widens the id columns from 32 to 36 characters on PostgreSQL
        # only: SQLite keeps no length (it stores any text), so its columns still read
        # VARCHAR(32). A change of length alone is no difference there.
        changes = diff if isinstance(diff, list) else [diff]
        if conn.dialect.name == "sqlite" and all(_length_only(c) for c in changes):
            continue
        found.append(diff)
    return found


def _length_only(change: Any) -> bool:
    if change[0] != "modify_type":
        return False
    stored, declared = change[5], change[6]
    return (
        isinstance(stored, String)
        and isinstance(declared, String)
        and ((stored.length, declared.length) == (32, ID_LENGTH))
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_migrations_create_the_tables(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_db")
        url = make()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'ddl.db'}"
    db = database.create_engine(url)
    try:
        await database.migrate(db)
        async with db.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await db.dispose()


def test_the_orm_maps_the_core_tables() -> None:
    """Every ORM class is mapped onto a table of ``tables.metadata``, every column."""
    classes = {m.class_.__table__.name: m for m in schema.Base.registry.mappers}
    assert schema.Base.metadata is tables.metadata
    assert set(classes) == set(tables.metadata.tables)
    for name, mapper in classes.items():
        assert mapper.local_table is tables.metadata.tables[name]
        mapped = {c.name for prop in mapper.column_attrs for c in prop.columns}
        assert mapped == set(mapper.local_table.c.keys()), name
