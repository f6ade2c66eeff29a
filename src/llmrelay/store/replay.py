"""Replaying the spools that dead processes left: their rows reach the database once.

A process killed before its rows were written leaves its segments and an unlocked lock
file in the spool directory (:mod:`llmrelay.store.spool`). The log writer's database
task adopts them at start and then every 30 s
(:meth:`llmrelay.store.spool.Spool.orphans`), oldest owner first, and hands their rows
to the writer's commit in batches, which skips rows already written (exactly once by
id). A ``BEGUN`` stub with neither a row nor an ``ENDED`` record is a call the dead
process never finished: it becomes a ``gateway_stopped`` row
(:func:`llmrelay.store.rows.unfinished_row`), so a SIGKILL does not erase the calls it
cut.

While a spool is being read, :attr:`OrphanReplay.replaying` is true: it is read in
batches, so ``replayed > 0`` with nothing pending is not yet the end (``/api/db-stats``
shows the flag as ``replaying``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from llmrelay.store.rows import unfinished_row
from llmrelay.store.spool import BEGUN, ROW, Orphan, Spool
from llmrelay.store.writer_stats import WriterStats
from llmrelay.telemetry.interaction import Interaction

log = logging.getLogger("llmrelay.writer")

#: Writes rows, waiting out a database outage (the writer's ``_commit``).
Commit = Callable[[list[Interaction]], Awaitable[None]]


class OrphanReplay:
    def __init__(self, spool: Spool, batch_size: int, commit: Commit, stats: WriterStats) -> None:
        self._spool = spool
        self._batch_size = batch_size
        self._commit = commit
        self._stats = stats
        self._current: Orphan | None = None

    @property
    def replaying(self) -> bool:
        """A dead process's spool is being read now (rows of it may be unread)."""
        return self._current is not None

    async def run(self) -> None:
        """Replay every orphan found now, each to its end."""
        for orphan in self._spool.orphans():
            self._current = orphan
            await self._replay(orphan)
            self._current = None

    async def _replay(self, orphan: Orphan) -> None:
        count = 0
        unfinished: dict[str, Interaction] = {}  # begun, with neither a row nor an end
        while records := orphan.read(self._batch_size):
            rows = []
            for _, kind, it in records:
                if kind == BEGUN:
                    unfinished[it.id] = it
                    continue
                unfinished.pop(it.id, None)
                if kind == ROW:
                    rows.append(it)
            if rows:
                await self._commit(rows)
            count += len(rows)
            self._stats.replayed += len(rows)
        if unfinished:
            await self._commit([unfinished_row(it) for it in unfinished.values()])
            self._stats.unfinished_calls += len(unfinished)
        self._stats.torn_records += orphan.torn
        orphan.finish()
        log.warning(
            "replayed %d log rows left in the spool by %s, %d calls it never finished%s",
            count,
            orphan.owner,
            len(unfinished),
            f" ({orphan.torn} torn record dropped)" if orphan.torn else "",
        )

    def abandon(self) -> None:
        """Shutting down mid-replay: the orphan's remaining files stay for the next start."""
        if self._current is not None:
            self._current.abandon()
            self._current = None
