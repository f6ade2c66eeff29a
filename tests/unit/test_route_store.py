"""Stored route configs while the database is away: the last table read keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from llmrelay.routing.store import RouteConfigStore, save_config
from llmrelay.store import database


class Hangable:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.hang = False

    def __call__(self) -> Any:
        return self._session()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Any]:
        if self.hang:
            await asyncio.Event().wait()
        async with self.real() as session:
            yield session


async def test_a_hung_database_times_out_and_the_old_configs_stay(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cfg.db'}")
    await database.migrate(engine)
    real = database.sessionmaker(engine)
    await save_config(real, "from-db", {"provider": "mock", "model": "db-model"})
    sessions = Hangable(real)
    store = RouteConfigStore({}, cast(Any, sessions), ttl=0.05, timeout=0.3)
    try:
        await store.start()
        assert (await store.get("from-db")) is not None
        assert store.status()["last_error"] is None
        sessions.hang = True
        refresh = asyncio.create_task(store.refresh())
        done, _ = await asyncio.wait({refresh}, timeout=10)  # a hang guard only
        assert refresh in done, "a refresh waited on the hung database"
        assert isinstance(refresh.exception(), TimeoutError)  # its own 0.3 s bound
        await asyncio.sleep(0.5)  # background refreshes keep failing, bounded each time
        spec = await store.get("from-db")
        assert spec is not None and spec.leaves()[0].model == "db-model"
        assert "TimeoutError" in str(store.status()["last_error"])
        sessions.hang = False
        for _ in range(500):  # the next background refresh (every 0.05 s) succeeds
            if store.status()["last_error"] is None:
                break
            await asyncio.sleep(0.02)
        assert store.status()["last_error"] is None
    finally:
        await store.close()
        await engine.dispose()
