"""Engines and migrations for SQLite (embedded default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with a busy timeout so readers (key lookups) never block on the
single writer task; "database is locked" is the classic failure of SQLite gateways.

The gateway's own access is :class:`Database`: SQLAlchemy Core connections of a plain
``Engine`` whose driver is async (aiosqlite, asyncpg), each call run in a greenlet by
``greenlet_spawn``, which is what ``sqlalchemy.ext.asyncio``'s ``AsyncConnection`` does
too, without that package: its ``__init__`` imports the ORM (the session classes),
~0.2 s of every start on a quiet machine (issue 14). Same driver, same pool, same
statements; the ORM session factory of the admin plane and the CLI
(:func:`sessionmaker`) wraps the very same engine when it is first asked for.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy import create_engine as _sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import CursorResult, Dialect, Engine, make_url
from sqlalchemy.util.concurrency import greenlet_spawn

MIGRATIONS = Path(__file__).parent / "migrations"

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Reader(Protocol):
    """What a read needs of a connection: a :class:`Connection`, or an ORM
    ``AsyncSession`` (the admin plane's), which answers Core statements the same way."""

    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...


class Writer(Reader, Protocol):
    """A :class:`Connection` or an ``AsyncConnection`` (the admin plane's session's):
    statements that depend on the dialect (upserts)."""

    @property
    def dialect(self) -> Dialect: ...


#: The rows of a statement, however many columns it has.
Rows = CursorResult[*tuple[Any, ...]]

#: ``Database.connect`` (or anything opening a :class:`Reader` the same way).
Connect = Callable[[], AbstractAsyncContextManager[Reader]]


async def _to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Finish ``work`` (a connection's close) even if the caller is cancelled meanwhile,
    then re-raise the cancellation, as ``sqlalchemy.ext.asyncio`` closes its connections:
    a close abandoned halfway could hand the pool a connection still in use."""
    task = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise
            cancelled = exc
        else:
            if cancelled is not None:
                raise cancelled
            return result


class Connection:
    """One pooled connection: ``AsyncConnection``'s calls the gateway uses, on Core."""

    __slots__ = ("sync",)

    def __init__(self, sync: SyncConnection) -> None:
        self.sync = sync

    @property
    def dialect(self) -> Dialect:
        return self.sync.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Rows:
        """Run ``statement``; the drivers buffer the rows, so the result is read freely."""
        return await greenlet_spawn(self.sync.execute, statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(self.sync.scalar, statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalars()

    async def exec_driver_sql(
        self, statement: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Rows:
        return await greenlet_spawn(self.sync.exec_driver_sql, statement, parameters)

    @property
    def in_driver_thread(self) -> Callable[..., Coroutine[Any, Any, Any]] | None:
        """On aiosqlite, ``await conn.in_driver_thread(fn, *args)`` runs ``fn(sqlite3
        connection, *args)`` as one job in the connection's own thread, where every
        statement already runs: a batch of statements costs one round trip instead of a
        greenlet, a queued job and a wake-up of the loop each. ``fn`` must be short
        Python around the driver's C calls (it holds the GIL the loop needs). None on
        other drivers."""
        if self.sync.dialect.driver != "aiosqlite":
            return None
        # aiosqlite's queue of jobs for its thread, as SQLAlchemy's own adapter uses it
        # (``AsyncAdapt_aiosqlite_connection``); a test checks the path is taken.
        driver: Any = self.sync.connection.driver_connection
        return partial(driver._execute, _with_sqlite3, driver)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(sync_connection, *args)`` in the greenlet (Alembic, inspection)."""
        return await greenlet_spawn(fn, self.sync, *args)

    async def commit(self) -> None:
        await greenlet_spawn(self.sync.commit)

    async def rollback(self) -> None:
        await greenlet_spawn(self.sync.rollback)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[Connection]:
        """A savepoint: rolled back if the block raises, the outer transaction goes on."""
        savepoint = await greenlet_spawn(self.sync.begin_nested)
        try:
            yield self
        except BaseException as exc:
            await greenlet_spawn(savepoint.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await greenlet_spawn(savepoint.__exit__, None, None, None)


def _with_sqlite3(driver: Any, fn: Callable[..., T], *args: Any) -> T:
    """In aiosqlite's thread: ``fn`` on the connection's ``sqlite3.Connection``."""
    return fn(driver._conn, *args)


class Database:
    """The gateway's database: ``connect()`` / ``begin()`` like an ``AsyncEngine``."""

    __slots__ = ("sync_engine",)

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> Any:
        return self.sync_engine.url

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        sync = await greenlet_spawn(self.sync_engine.connect)
        try:
            yield Connection(sync)
        finally:
            await _to_completion(greenlet_spawn(sync.close))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Connection]:
        """A connection in a transaction: committed at the end of the block, rolled back
        if it raises."""
        async with self.connect() as conn:
            transaction = await greenlet_spawn(conn.sync.begin)
            try:
                yield conn
            except BaseException as exc:
                await greenlet_spawn(transaction.__exit__, type(exc), exc, exc.__traceback__)
                raise
            await greenlet_spawn(transaction.__exit__, None, None, None)

    async def dispose(self) -> None:
        await greenlet_spawn(self.sync_engine.dispose)


#: None for None (see create_engine).
_NULL_ADAPTER: Any = {}.get
#: Statements the sqlite3 module keeps prepared per connection (its default is 128).
_SQLITE_STATEMENTS = 64


def create_engine(url: str) -> Database:
    kwargs: dict[str, Any] = {"pool_pre_ping": False}
    if is_sqlite(url):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Prepared statements cached per connection, few and small: the log writer's
        # multi-row INSERTs come in eight sizes per table (store/bulk.py, ~0.7 MB of
        # prepared statements per table), and parsing each batch's INSERT anew was half
        # of the driver thread's work (bench/instructions.py --writer). (The INSERT of
        # each batch's own size, cached, was 128 statements of ~10-15 MB at a few
        # thousand rows: 790 MB of RSS after bench/run.sh's c64 phases.)
        kwargs["connect_args"] = {"timeout": 30, "cached_statements": _SQLITE_STATEMENTS}
        # The connection returned last is handed out first: the writer's batches keep
        # finding their statements prepared instead of going round every pooled
        # connection (each parsing them once more: FIFO was ~9k instructions a call).
        # (An in-memory database has one connection, a StaticPool, which takes no such
        # argument.)
        if parsed.database and parsed.database != ":memory:":
            kwargs["pool_use_lifo"] = True
        # A None parameter binds as NULL either way; with no adapter registered for it
        # the sqlite3 module first looks for one the slow way (an AttributeError made and
        # dropped per value, ~2.4k instructions: a tenth of the driver thread's work for
        # the writer's rows, most of whose optional columns are null). ``{}.get`` is a C
        # function that gives None back for None. Idempotent, process-wide, no change in
        # what any statement stores.
        sqlite3.register_adapter(type(None), _NULL_ADAPTER)
    else:
        # Behind PgBouncer in transaction mode prepared statements break; small cost here.
        kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        kwargs["connect_args"] = {"statement_cache_size": 0}
    # JSON columns (attempts, metadata) go through orjson instead of the stdlib encoder.
    kwargs["json_serializer"] = _json_dumps
    kwargs["json_deserializer"] = orjson.loads
    # What ``create_async_engine`` passes: the URL's async dialect (``postgresql+psycopg``
    # becomes psycopg's async one) and its asyncio-adapted pool.
    engine = _sync_engine(url, _is_async=True, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return Database(engine)


def sessionmaker(db: Database) -> Any:
    """ORM sessions over ``db``'s engine and pool (``async_sessionmaker``), for the admin
    plane and the CLI; imports the ORM and ``sqlalchemy.ext.asyncio`` on first use."""
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    return async_sessionmaker(AsyncEngine(db.sync_engine), expire_on_commit=False)


def _alembic_config(connection: SyncConnection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: SyncConnection) -> None:
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


def _current_revisions(connection: SyncConnection) -> set[str]:
    """The revision(s) stamped in the database; empty when it has never been migrated."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


async def migrate(engine: Database) -> None:
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
