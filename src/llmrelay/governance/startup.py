"""Building the governance stage at start: backend by configuration, prices, refresh.

Redis is used when ``redis_url`` is set, the in-process backend otherwise; choosing is
configuration only. Prices come from the config's ``prices:``, then the ``models`` table
(``llmrelay catalog sync``, or rows added by hand), then the bundled snapshot; a
background task reloads them when the table changes, so a sync reaches running
gateways within ``refresh`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from llmrelay.governance.backend import Backend
from llmrelay.governance.catalog import (
    Layered,
    catalog_state,
    load_db_catalog,
    load_snapshot,
    overrides_from_config,
)
from llmrelay.governance.governor import Governor
from llmrelay.governance.local import LocalBackend
from llmrelay.governance.pricing import PriceBook
from llmrelay.governance.usage import spend_loader
from llmrelay.store.database import Database

if TYPE_CHECKING:
    from llmrelay.config import Settings

log = logging.getLogger("llmrelay.governance")


async def load_prices(settings: Settings, engine: Database) -> PriceBook:
    """Config overrides, then the ``models`` table, then the bundled snapshot."""
    catalog = Layered(await load_db_catalog(engine), load_snapshot())
    return PriceBook(catalog, overrides_from_config(settings.prices))


def build_backend(settings: Settings, engine: Database) -> Backend:
    load = spend_loader(engine, settings.database_timeout)
    if not settings.redis_url:
        return LocalBackend(load)
    from llmrelay.governance.redis_backend import RedisBackend

    return RedisBackend(
        settings.redis_url,
        load,
        prefix=settings.redis_prefix,
        fail_mode=settings.redis_fail_mode,
        timeout=settings.redis_timeout,
        retry_interval=settings.redis_retry_interval,
        reservation_ttl=settings.reservation_ttl,
        settle_lag=2 * settings.log_flush_interval + 0.1,
    )


class GovernanceRuntime:
    """The governor plus the task that keeps its prices current."""

    def __init__(self, governor: Governor, engine: Database, refresh: float) -> None:
        self.governor = governor
        self._engine = engine
        self._refresh = refresh
        self._task: asyncio.Task[None] | None = None
        self._state: tuple[int, str | None] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, engine: Database, refresh: float = 60.0
    ) -> GovernanceRuntime:
        governor = Governor(
            settings, build_backend(settings, engine), await load_prices(settings, engine)
        )
        runtime = cls(governor, engine, refresh)
        runtime._state = await catalog_state(engine)
        runtime._task = asyncio.create_task(runtime._watch(), name="llmrelay-price-refresh")
        return runtime

    async def reload_prices(self) -> None:
        """Read the prices again now (the admin API changed them)."""
        self.governor.prices = await load_prices(self.governor.settings, self._engine)
        self._state = await catalog_state(self._engine)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                state = await catalog_state(self._engine)
                if state != self._state:
                    self.governor.prices = await load_prices(self.governor.settings, self._engine)
                    self._state = state
                    log.info("price catalog reloaded (%d models in the database)", state[0])
            except Exception as exc:  # database briefly away: keep the current prices
                log.warning("price catalog refresh failed: %s", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.governor.close()
