"""Engines and migrations for SQLite (embedded default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with a busy timeout so readers (key lookups) never block on the
single writer task; "database is locked" is the classic failure of SQLite gateways.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_pre_ping": False}
    if is_sqlite(url):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # Behind PgBouncer in transaction mode prepared statements break; small cost here.
        kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        kwargs["connect_args"] = {"statement_cache_size": 0}
    # JSON columns (attempts, metadata) go through orjson instead of the stdlib encoder.
    kwargs["json_serializer"] = _json_dumps
    kwargs["json_deserializer"] = orjson.loads
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(.+)$", re.MULTILINE)


def head_revisions() -> set[str]:
    """Heads of the migration graph, read from the version files without Alembic.

    Importing Alembic's script machinery costs more than the rest of start-up; the
    files' ``revision`` / ``down_revision`` lines are all that is needed (a test checks
    this agrees with Alembic).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text()):
            ids = set(re.findall(r"['\"]([^'\"]+)['\"]", value))
            (parents if name == "down_revision" else revisions).update(ids)
    return revisions - parents


def _current_revisions(connection: Connection) -> set[str]:
    """The revision(s) stamped in the database; empty when it has never been migrated."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent; safe at every start).

    Checking the stamped revision first keeps Alembic's migration machinery (a few
    hundred milliseconds of imports) out of the common start, where nothing changed.
    """
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revisions)
    if current and current == head_revisions():
        return
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def migrate_url(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
