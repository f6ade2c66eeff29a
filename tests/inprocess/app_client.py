"""The gateway application in the test's own event loop, reached through
``httpx.ASGITransport``: no process, no socket between the client and the pipeline.

Settings come from ``load_settings`` exactly as ``llmrelay serve`` builds them (an empty
environment, so no preset provider switches on from the developer's shell), with a
SQLite database in the test's directory. The same database file is opened by the
helpers here to create keys and read the rows the gateway wrote.

Note: ``ASGITransport`` collects a streamed answer whole before returning it, so stream
tests see every event but not their timing; the end-to-end tier covers real sockets.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from llmrelay.app import create_app
from llmrelay.config import load_settings
from llmrelay.governance.keys import create_key
from llmrelay.store import database
from tests.inprocess.lifespan import lifespan

#: Rows are written by a background writer; this many polls (20 ms apart) is the hang
#: guard while waiting for them, not a timing assertion.
ROW_POLLS = 500


class InProcessGateway:
    """One application instance, started with its lifespan, and a client bound to it."""

    def __init__(
        self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = f"sqlite+aiosqlite:///{workdir / 'llmrelay.db'}"
        self.log_file = workdir / "interactions.log"
        overrides: dict[str, Any] = {
            "database_url": self.database_url,
            "log_file": str(self.log_file),
            "log_flush_interval": 0.02,
            "provider_reload_interval": 0,
            "auto_providers": False,
            **config,
        }
        self.settings = load_settings(env=env or {}, overrides=overrides)
        self.app = create_app(self.settings)
        self._stack = AsyncExitStack()
        self.client: httpx.AsyncClient
        self._engine: Any = None

    async def start(self) -> InProcessGateway:
        await self._stack.enter_async_context(lifespan(self.app))
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30)
        )
        self._engine = database.create_engine(self.database_url)
        return self

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        await self._stack.aclose()

    async def create_key(self, name: str, **kw: Any) -> str:
        key, _ = await create_key(database.sessionmaker(self._engine), name, **kw)
        return key

    async def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self._engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]

    async def wait_rows(self, sql: str, count: int, **params: Any) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects once there are at least ``count`` of them."""
        for _ in range(ROW_POLLS):
            rows = await self.query(sql, **params)
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(rows)} of {count} rows: {sql}")

    async def post(
        self, path: str, body: Any, key: str | None = None, **headers: str
    ) -> httpx.Response:
        h = dict(headers)
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        if isinstance(body, bytes):
            return await self.client.post(path, content=body, headers=h)
        return await self.client.post(path, json=body, headers=h)
