"""The price catalog in the database: sync, exact read-back, and live reload."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson

from llmrelay.config import load_settings
from llmrelay.governance.catalog import catalog_state, load_db_catalog, sync_catalog
from llmrelay.governance.startup import GovernanceRuntime
from llmrelay.store import database

CATALOG = orjson.dumps(
    {
        "sample_spec": {"input_cost_per_token": 0.0},
        "custom-model": {
            "input_cost_per_token": 1.41953125e-07,
            "output_cost_per_token": 2.9999900000000002e-06,
            "cache_read_input_token_cost": 7.5e-08,
            "litellm_provider": "custom",
            "mode": "chat",
            "max_input_tokens": 8192,
        },
        "image-only": {"output_cost_per_image": 0.04, "mode": "image_generation"},
    }
)


async def test_sync_upserts_and_reads_back_exact_prices(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    try:
        await database.migrate(engine)
        assert await sync_catalog(engine, CATALOG) == 1  # the image-only entry has no token price
        assert await sync_catalog(engine, CATALOG) == 1  # an upsert, not a duplicate
        assert (await catalog_state(engine))[0] == 1
        price = (await load_db_catalog(engine))["custom-model"]
        assert price.input == Decimal("0.000000141953125")
        assert price.output == Decimal("0.00000299999")  # float noise rounded away
        assert price.cache_read == Decimal("0.000000075")
    finally:
        await engine.dispose()


async def test_running_gateways_reload_prices_after_a_sync(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    try:
        await database.migrate(engine)
        runtime = await GovernanceRuntime.start(load_settings(env={}), engine, refresh=0.02)
        try:
            governor = runtime.governor
            assert governor.prices.get("gpt-4o-mini") is not None  # the bundled snapshot
            assert governor.prices.get("custom-model") is None
            await sync_catalog(engine, CATALOG)
            for _ in range(200):
                await asyncio.sleep(0.02)
                if governor.prices.get("custom-model") is not None:
                    break
            assert governor.prices.get("custom-model") is not None
            assert governor.prices.get("gpt-4o-mini") is not None  # snapshot underneath
        finally:
            await runtime.close()
    finally:
        await engine.dispose()
