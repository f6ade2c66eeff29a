"""A batch the database refuses: split down to the refused row, which is set aside.

Every value is bounded where it enters its row (:mod:`llmrelay.store.bounds`), so a
refusal is rare; when a batch still fails while the database answers a probe, it is
split in halves until the refused row is alone, that row is tried twice more (a
deadlock or a concurrent replay passes), and then it is appended to
``dead-letter.jsonl`` in the spool directory with the database's reason, and counted;
every other row of the batch is written. A failure while the database does not answer
(or a timeout) is not a refusal: :class:`DatabaseAway` tells the log writer to wait the
outage out with the whole batch (:meth:`llmrelay.store.writer.LogWriter._commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from llmrelay.store.bounds import clean_text
from llmrelay.store.deadline import within
from llmrelay.store.spool import Spool
from llmrelay.store.writer_stats import WriterStats
from llmrelay.telemetry.interaction import Interaction, redact

log = logging.getLogger("llmrelay.writer")

#: Writes abandoned to their timeout that may still hold a connection; past this many
#: the database counts as away without trying again (bounded connections and memory).
MAX_ABANDONED = 4
#: Further tries of a single refused row before it is set aside.
_SINGLE_ROW_RETRIES = 2


class DatabaseAway(Exception):
    """The database did not answer (or timed out): retry the batch later."""


class Splitter:
    """Writes a batch with ``write``, bisecting it when the database refuses it."""

    def __init__(
        self,
        write: Callable[[list[Interaction]], Coroutine[Any, Any, None]],
        reachable: Callable[[], Awaitable[bool]],
        db_timeout: float,
        abandoned: set[asyncio.Task[Any]],
        stats: WriterStats,
        spool: Spool,
    ) -> None:
        self._write = write
        self._reachable = reachable
        self._db_timeout = db_timeout
        self._abandoned = abandoned
        self._stats = stats
        self._spool = spool

    async def write_or_split(self, rows: list[Interaction]) -> None:
        """Write ``rows``; if the database refuses them while answering, bisect."""
        if len(self._abandoned) >= MAX_ABANDONED:
            raise DatabaseAway(f"{len(self._abandoned)} writes still hung")
        try:
            await within(self._db_timeout, self._write(rows), self._abandoned)
            return
        except DatabaseAway:
            raise
        except Exception as exc:
            self._stats.failed_batches += 1
            if isinstance(exc, TimeoutError) or not await self._reachable():
                raise DatabaseAway(f"{type(exc).__name__}: {exc}") from exc
            error = exc
        if len(rows) == 1:
            await self._write_or_set_aside(rows[0], error)
            return
        mid = len(rows) // 2
        await self.write_or_split(rows[:mid])
        await self.write_or_split(rows[mid:])

    async def _write_or_set_aside(self, it: Interaction, error: Exception) -> None:
        """One refused row: try again (a deadlock or a concurrent replay passes), then set
        it aside."""
        for _ in range(_SINGLE_ROW_RETRIES):
            await asyncio.sleep(0.2)
            try:
                await within(self._db_timeout, self._write([it]), self._abandoned)
                return
            except Exception as exc:
                if isinstance(exc, TimeoutError) or not await self._reachable():
                    raise DatabaseAway(f"{type(exc).__name__}: {exc}") from exc
                error = exc
        log.error("log row %s refused by the database, set aside: %s", it.id, error)
        dead_letter(self._spool, self._stats, it, f"{type(error).__name__}: {error}")


def dead_letter(spool: Spool, stats: WriterStats, it: Interaction, reason: str) -> None:
    """Set ``it`` aside in ``dead-letter.jsonl`` with ``reason`` (redacted), and count it."""
    stats.dead_lettered += 1
    try:
        row: Any = msgspec.to_builtins(it)
        orjson.dumps(row)
    except Exception:
        row = {"id": it.id, "repr": clean_text(repr(it), 100_000)}
    entry = {
        "id": it.id,
        "failed_at": datetime.now(UTC).isoformat(),
        "reason": clean_text(redact(reason), 2000),
        "row": row,
    }
    try:
        spool.dead_letter([entry])
    except OSError as exc:
        log.error("cannot write the dead-letter file: %s; row %s lost", exc, it.id)
