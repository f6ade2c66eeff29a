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
from sqlalchemy.engine import Connection

from llmrelay.store import database, schema, tables


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, tables.metadata))


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
