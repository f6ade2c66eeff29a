"""Named route configs: the YAML file's ``route_configs`` and the ``route_configs`` table.

YAML configs are parsed once at start (a bad one stops the start). Database configs
can be added while the gateway runs (``llmrelay route-configs set``): the whole table
(small) is read at start and re-read in the background every ``ttl`` seconds, so a
change is picked up within that time and no request ever waits on the database for
a config lookup.

While the database is away (refused, or hung: every read has ``timeout``), the last
table read keeps serving, with no age limit: unlike a key, a config grants nothing by
itself (the key's model allow-list still applies to its targets), and dropping it would
turn every call using it into an error. ``status()`` shows its age in ``/health/ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from llmrelay.routing.config import RouteConfigError, RouteSpec, parse_route_config
from llmrelay.store.database import Connect
from llmrelay.store.deadline import within
from llmrelay.store.ids import new_id, utcnow
from llmrelay.store.tables import route_configs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

log = logging.getLogger("llmrelay.routing")


class StoredConfigInvalid(Exception):
    """A config in the database no longer validates (written by an older version?)."""

    def __init__(self, name: str, error: RouteConfigError) -> None:
        super().__init__(f"route config {name!r} in the database is invalid: {error}")
        self.name = name
        self.error = error


def parse_named(configs: Mapping[str, Any]) -> dict[str, RouteSpec]:
    """Parse the YAML ``route_configs`` mapping; errors carry ``<name>.<path>``."""
    out: dict[str, RouteSpec] = {}
    for name, raw in configs.items():
        try:
            out[name] = parse_route_config(raw)
        except RouteConfigError as exc:
            path = f"{name}.{exc.path}" if exc.path else name
            raise RouteConfigError(path, exc.message) from exc
    return out


class RouteConfigStore:
    """Named configs by name: YAML ones first, then the database's (refreshed in the back)."""

    def __init__(
        self,
        static: dict[str, RouteSpec],
        connect: Connect,
        ttl: float,
        timeout: float = 2.0,
    ) -> None:
        self._static = static
        self._connect = connect
        self._ttl = ttl
        self._timeout = timeout
        self._loaded_at: float | None = None
        self._last_error: str | None = None
        self._stored: dict[str, RouteSpec | StoredConfigInvalid] = {}
        self._versions: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def static_names(self) -> list[str]:
        return list(self._static)

    async def get(self, name: str) -> RouteSpec | None:
        """The named config, or ``None``; raises :class:`StoredConfigInvalid`."""
        return self.lookup(name)

    def lookup(self, name: str) -> RouteSpec | None:
        """:meth:`get` without the coroutine: the table is in memory (the request path
        asks it for every call's model)."""
        spec = self._static.get(name)
        if spec is not None:
            return spec
        found = self._stored.get(name)
        if isinstance(found, StoredConfigInvalid):
            raise found
        return found

    async def start(self) -> None:
        """Load the table once (a broken database fails the start), then keep it fresh."""
        await self.refresh()
        if self._ttl > 0:
            self._task = asyncio.create_task(self._refresh_forever(), name="llmrelay-route-configs")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def status(self) -> dict[str, object]:
        """For readiness: how old the served table is and why the last read failed."""
        age = None if self._loaded_at is None else time.monotonic() - self._loaded_at
        return {
            "stored": len(self._stored),
            "age_seconds": None if age is None else round(age, 1),
            "last_error": self._last_error,
        }

    async def _read(self) -> list[Any]:
        t = route_configs
        async with self._connect() as conn:
            return list((await conn.execute(select(t.c.name, t.c.config, t.c.updated_at))).all())

    async def refresh(self) -> None:
        """Read the table (at most ``timeout`` seconds); on failure the old one stays."""
        try:
            rows = await within(self._timeout, self._read())
        except Exception as exc:
            self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise
        self._loaded_at, self._last_error = time.monotonic(), None
        stored: dict[str, RouteSpec | StoredConfigInvalid] = {}
        versions: dict[str, Any] = {}
        for name, raw, updated in rows:
            versions[name] = updated
            previous = self._stored.get(name)
            if previous is not None and self._versions.get(name) == updated:
                stored[name] = previous
                continue
            try:
                stored[name] = parse_route_config(raw)
            except RouteConfigError as exc:
                stored[name] = StoredConfigInvalid(name, exc)
                log.error("%s", stored[name])
        self._stored, self._versions = stored, versions

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl)
            try:
                await self.refresh()
            except Exception as exc:  # database away: keep serving what we have
                log.warning("route configs not refreshed: %s: %s", type(exc).__name__, exc)


# -- management (CLI) ------------------------------------------------------------------


async def save_config(sessions: async_sessionmaker[Any], name: str, raw: Any) -> bool:
    """Validate and store a config under ``name``; returns whether it replaced one."""
    parse_route_config(raw)
    t = route_configs
    now = utcnow()
    async with sessions() as session, session.begin():
        found = await session.scalar(select(t.c.id).where(t.c.name == name))
        if found is not None:
            await session.execute(
                update(t).where(t.c.id == found).values(config=raw, updated_at=now)
            )
            return True
        await session.execute(
            insert(t).values(id=new_id(), name=name, config=raw, created_at=now, updated_at=now)
        )
        return False


async def list_configs(sessions: async_sessionmaker[Any]) -> list[Any]:
    """Every stored config's row (``name``, ``config``, ``updated_at``, ...), by name."""
    async with sessions() as session:
        t = route_configs
        return list((await session.execute(select(t).order_by(t.c.name))).all())


async def delete_config(sessions: async_sessionmaker[Any], name: str) -> bool:
    async with sessions() as session, session.begin():
        result = await session.execute(delete(route_configs).where(route_configs.c.name == name))
    return bool(getattr(result, "rowcount", 0))


async def config_exists(sessions: async_sessionmaker[Any], name: str) -> bool:
    async with sessions() as session:
        t = route_configs
        found = await session.scalar(select(t.c.id).where(t.c.name == name))
    return found is not None
