"""Shared fixtures: the mock upstream server, real gateway processes, PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.services import ensure_postgres, ensure_redis, postgres_admin_dsn

_ids = itertools.count()


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream(host="127.0.0.1", port=0)
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture
def mock(upstream: MockUpstream) -> MockUpstream:
    upstream.reset()
    return upstream


def _run_async(coro: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    return result[0]


@pytest.fixture(scope="session")
def postgres_server() -> None:
    ensure_postgres()


@pytest.fixture(scope="session")
def redis_server() -> None:
    ensure_redis()


@pytest.fixture(scope="session")
def make_postgres_db(postgres_server: None) -> Iterator[Callable[[], str]]:
    """Creates throwaway databases; drops them all at the end of the session."""
    import asyncpg

    created: list[str] = []

    def make() -> str:
        # The process id too: pytest-xdist runs several sessions at once.
        name = f"llmrelay_test_{os.getpid()}_{next(_ids)}_{threading.get_native_id()}"

        async def create() -> None:
            conn = await asyncpg.connect(postgres_admin_dsn())
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        _run_async(create())
        created.append(name)
        return postgres_admin_dsn(name).replace("postgresql://", "postgresql+asyncpg://")

    yield make

    # All at once, each on a connection of its own: a DROP DATABASE waits for a
    # checkpoint, and one after the other they took 4.4 s each (4 in 17.6 s on the
    # shared 2-core machine, 2026-12-04; 1.3 s for the 4 at once, whose checkpoints
    # are shared). They were the ~15 s "teardown" of whichever test ended a session.
    async def drop_one(name: str, slots: asyncio.Semaphore) -> None:
        async with slots:
            conn = await asyncpg.connect(postgres_admin_dsn())
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

    async def drop() -> None:
        slots = asyncio.Semaphore(8)  # the server's connections are shared with the tests
        await asyncio.gather(*(drop_one(name, slots) for name in created))

    if created:
        _run_async(drop())


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateway processes for one test; they are stopped when it ends."""
    procs: list[GatewayProcess] = []

    def start(
        config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> GatewayProcess:
        gw = GatewayProcess(tmp_path / f"gw{len(procs)}", config or {}, env)
        procs.append(gw)
        return gw.start()

    yield start
    for gw in procs:
        gw.stop()


# Servers of a test's own, for outage tests (stop/start/pause them freely).
from tests.private_services import private_postgres, private_redis  # noqa: E402,F401
