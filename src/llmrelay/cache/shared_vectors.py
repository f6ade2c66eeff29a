"""Semantic-cache questions shared by every instance through the database.

With ``response_cache.shared_vectors`` each stored question's vector is also written to
the ``cache_vectors`` table (PostgreSQL: the shared truth), and every instance polls it
every ``vector_sync_interval`` seconds for rows it has not seen, adding them to its own
in-process index (:class:`~llmrelay.cache.semantic.SemanticIndex`): so a question stored
through one instance is a semantic hit on another within one interval, while searches
stay local and cost no database round trip. The answers themselves live in the cache
backend (Redis, shared). Rows are read by ``seq`` with an overlap, since rows of
concurrent transactions may commit out of order; re-reading one is harmless (the index
replaces a key it holds). Expired rows are deleted by whichever instance polls. Every
database operation has ``database_timeout``; a failure is logged and counted, and the
next poll retries. pgvector is not needed; when the server has it, the table is also
searched by the server on a local miss (``cache/pgvector.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from llmrelay.cache import pgvector
from llmrelay.cache.semantic import SemanticIndex
from llmrelay.store.deadline import within
from llmrelay.store.tables import cache_vectors

if TYPE_CHECKING:
    from llmrelay.store.database import Database

log = logging.getLogger("llmrelay.cache")

#: Rows re-read below the highest ``seq`` seen (out-of-order commits).
_OVERLAP = 100
_BATCH = 5000


def pack(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack(raw: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class SharedVectors:
    def __init__(
        self,
        engine: Database,
        index: SemanticIndex,
        interval: float,
        timeout: float,
        failed: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.index = index
        self.interval = interval
        self.timeout = timeout
        self.failed = failed
        self.seen = 0
        #: The last rows added, so the overlap re-read does not add them again.
        self._recent: deque[int] = deque(maxlen=4 * _OVERLAP)
        self._recent_set: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._table: sa.Table = cache_vectors
        #: pgvector on the server (PostgreSQL only; found by :meth:`prepare`).
        self.presence: pgvector.Presence | None = None

    @property
    def pgvector(self) -> bool:
        return self.presence == "installed"

    async def prepare(self) -> None:
        """On PostgreSQL: detect pgvector (and its column); elsewhere nothing."""
        if self.engine.dialect.name != "postgresql":
            return

        async def run() -> pgvector.Presence:
            async with self.engine.begin() as conn:
                return await pgvector.prepare(conn)

        self.presence = await within(self.timeout, run())
        if self.presence == "installed":
            log.info("response cache: pgvector found; shared questions searched by the server")
        elif self.presence == "available":
            log.warning(
                "response cache: pgvector is available but could not be installed (run "
                "CREATE EXTENSION vector as a superuser); polling only"
            )

    async def add(self, context: str, vector: list[float], key: str, ttl: float) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=ttl)

        async def insert() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.insert(self._table).values(
                        context=context, entry_key=key, vector=pack(vector), expires_at=expires
                    )
                )
                if self.pgvector:
                    await conn.execute(
                        pgvector.SET_EMBEDDING,
                        {
                            "embedding": pgvector.literal(vector),
                            "context": context,
                            "entry_key": key,
                        },
                    )

        try:
            await within(self.timeout, insert())
        except Exception as exc:
            self.failed()
            log.warning(
                "response cache: could not share a question vector (%s)", type(exc).__name__
            )

    async def poll(self) -> int:
        """Add the rows not seen yet to the local index; returns how many were read."""
        now = datetime.now(UTC)
        t = self._table

        async def read() -> list[tuple[int, str, str, bytes, datetime]]:
            async with self.engine.begin() as conn:
                await conn.execute(sa.delete(t).where(t.c.expires_at < now))
                result = await conn.execute(
                    sa.select(t.c.seq, t.c.context, t.c.entry_key, t.c.vector, t.c.expires_at)
                    .where(t.c.seq > max(0, self.seen - _OVERLAP), t.c.expires_at > now)
                    .order_by(t.c.seq)
                    .limit(_BATCH)
                )
                return [(r[0], r[1], r[2], r[3], r[4]) for r in result.all()]

        rows = await within(self.timeout, read())
        for seq, context, key, raw, expires in rows:
            self.seen = max(self.seen, seq)
            if seq in self._recent_set:
                continue
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(seq)
            self._recent_set.add(seq)
            if expires.tzinfo is None:  # SQLite hands back naive UTC
                expires = expires.replace(tzinfo=UTC)
            self.index.add(context, unpack(raw), key, (expires - now).total_seconds())
        return len(rows)

    async def search(
        self, context: str, vector: list[float], threshold: float
    ) -> tuple[str, float] | None:
        """With pgvector: the best live shared question of ``context`` at or above
        ``threshold``, searched by the server; ``None`` on a failure (counted)."""
        params = {
            "embedding": pgvector.literal(vector),
            "context": context,
            "now": datetime.now(UTC),
            "dims": len(vector),
        }

        async def run() -> tuple[str, float] | None:
            async with self.engine.connect() as conn:
                row = (await conn.execute(pgvector.SEARCH, params)).first()
            return None if row is None else (str(row[0]), float(row[1]))

        try:
            found = await within(self.timeout, run())
        except Exception as exc:
            self.failed()
            log.warning("response cache: pgvector search failed (%s)", type(exc).__name__)
            return None
        return found if found is not None and found[1] >= threshold else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.prepare()
        except Exception as exc:
            self.failed()
            log.warning(
                "response cache: detecting pgvector failed (%s); polling only",
                type(exc).__name__,
            )
        while True:
            try:
                while await self.poll() >= _BATCH:  # catching up (a start, a backlog)
                    pass
            except Exception as exc:
                self.failed()
                log.warning(
                    "response cache: reading shared question vectors failed (%s)",
                    type(exc).__name__,
                )
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
