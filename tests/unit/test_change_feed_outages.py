"""The change feed with its dependencies away: Redis refusing, the database refusing.

Neither may fail or hang the change it reports: a change made here is applied here at
once whatever happens to the message, and a poll that cannot read the database logs,
counts and tries again at the next interval.
"""

from __future__ import annotations

import asyncio

from llmrelay.changes import ChangeFeed
from llmrelay.store import database
from tests.gateway_proc import free_port


async def test_redis_refusing_costs_the_message_not_the_change() -> None:
    engine = database.create_engine("sqlite+aiosqlite:///:memory:")
    seen: list[str] = []

    async def noted() -> None:
        seen.append("providers")

    feed = ChangeFeed(
        database.sessionmaker(engine),
        interval=0,
        timeout=1.0,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        redis_timeout=0.5,
    )
    feed.on("providers", noted)
    await feed.start()
    try:
        await asyncio.wait_for(feed.notify("providers"), 5)
        assert seen == ["providers"]  # applied here although nobody else heard
        assert feed.status()["published"] == 0 and feed.status()["errors"] >= 1
        await asyncio.sleep(0.6)
        assert feed.status()["listening"] is False  # the listener retries, backing off
    finally:
        await asyncio.wait_for(feed.close(), 5)
        await engine.dispose()


async def test_a_poll_against_a_database_that_refuses_logs_and_goes_on() -> None:
    port = free_port()
    engine = database.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none")
    seen: list[str] = []

    async def noted() -> None:
        seen.append("aliases")

    feed = ChangeFeed(database.sessionmaker(engine), interval=0.05, timeout=0.5)
    feed.on("aliases", noted)
    await asyncio.wait_for(feed.start(), 5)  # the first fingerprint fails: no crash
    await asyncio.sleep(0.4)
    status = feed.status()
    assert status["polls"] >= 2 and status["errors"] >= 2 and seen == []
    await asyncio.wait_for(feed.close(), 5)
    await engine.dispose()
