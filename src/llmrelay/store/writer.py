"""The batch writer: rows reach the database without the client waiting, and none is lost.

Two stages, each one task:

1. **Spool.** :meth:`LogWriter.submit` appends the finished :class:`Interaction` to a
   list (the whole hot-path cost; it never waits). Every ``spool_interval`` the spool
   task encodes what arrived, appends it to this process's spool file in one ``write``
   (:mod:`llmrelay.store.spool`), writes the JSON interaction log lines, and ``fsync``\\s
   in a thread. From then on the row survives a SIGKILL or a database outage.
2. **Database.** The database task writes spooled rows in order, in batches, one
   transaction per batch (``requests``, ``responses`` and the sinks' usage rows and
   summaries). Rows it has not written yet are held in memory up to ``queue_size``;
   beyond that they are read back from the spool when the database catches up, so
   memory is bounded however long the database is away.

Failures, by kind:

- *A value the database refuses*: prevented by bounding every value where it enters the
  row (:mod:`llmrelay.store.bounds`). A batch that still fails while the database
  answers a probe is split in halves until the refused row is alone; it is set aside in
  ``dead-letter.jsonl`` in the spool directory with the database's reason and counted,
  and every other row is written (:mod:`llmrelay.store.dead_letter`).
- *The database away, hung or slow*: each operation has a timeout (``db_timeout``); the
  batch is retried with backoff (up to 5 s) and, meanwhile, rows accumulate on disk.
- *Exactly once*: rows carry their ids; a batch first asks which of its ``requests``
  ids exist and writes only the others (their ``responses`` row has the same id), so
  replaying a batch — after a crash, or a commit whose acknowledgement was lost — adds
  no row and no summary increment twice.
- *The local disk cannot keep up* (``fsync`` stuck, spool over ``spool_max_bytes``):
  the one explicit loss. New rows are dropped, counted (``dropped``) and logged, rather
  than growing memory without bound or stalling requests.

On shutdown :meth:`close` spools what is left, gives the database until the deadline,
and leaves whatever is still unwritten in the spool for the next start, which replays it
(:mod:`llmrelay.store.replay`). A SIGKILL loses at most the rows of the last
``spool_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Dialect

from llmrelay.config import ConfigError
from llmrelay.store.backlog import Backlog
from llmrelay.store.bulk import Shared, Statement, execute, existing_ids, insert_statements
from llmrelay.store.database import Database
from llmrelay.store.dead_letter import DatabaseAway, Splitter, dead_letter
from llmrelay.store.deadline import within
from llmrelay.store.loop_share import FLOOR, LoopShare
from llmrelay.store.replay import OrphanReplay
from llmrelay.store.rows import (
    REQUEST_COLUMNS,
    RESPONSE_COLUMNS,
    log_line,
    request_values,
    response_values,
)
from llmrelay.store.spool import (
    BEGUN,
    ENDED,
    ROW,
    Record,
    Spool,
    encode,
    without_settled_stubs,
)
from llmrelay.store.tables import requests, responses
from llmrelay.store.writer_stats import WriterStats
from llmrelay.telemetry.interaction import Interaction

log = logging.getLogger("llmrelay.writer")

#: More statements for a batch's rows, run after its own in the same transaction (all or
#: nothing); built on the loop (in slices), run with the batch's (one job on SQLite).
#: ``Shared`` holds the batch's conversions (pass it on to ``insert_statements``).
BatchSink = Callable[[Dialect, list[Interaction], Shared], Awaitable[list[Statement]]]

#: Rows the spool step encodes (and logs, and counts) as one part; between parts it lets
#: requests run once its slice of the loop is spent (:mod:`llmrelay.store.loop_share`).
#: Whole batches were one step: 250 rows held the loop 15-25 ms on the shared machine
#: (bench/loop_stalls.py, "loop step" of llmrelay-log-spool).
_SPOOL_PART = 16
#: How many times ``batch_size`` a batch may hold while the writer is behind.
_CATCH_UP = 20
#: Seconds between looks for the spools of processes that died.
_ORPHAN_SCAN_INTERVAL = 30.0


class LogWriter:
    def __init__(
        self,
        engine: Database,
        *,
        queue_size: int,
        batch_size: int,
        flush_interval: float,
        log_stream: IO[bytes] | None,
        store_bodies: bool,
        spool_dir: Path,
        spool_interval: float = 0.05,
        db_timeout: float = 10.0,
        spool_max_bytes: int = 1024**3,
    ) -> None:
        self._engine = engine
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._interval = flush_interval
        self._stream = log_stream
        self._bodies = store_bodies
        self._spool_dir = spool_dir
        self._spool_interval = spool_interval
        self._db_timeout = db_timeout
        self._spool_max_bytes = spool_max_bytes
        #: The shortest slice of the loop the spool step takes before it lets requests
        #: run (:mod:`llmrelay.store.loop_share`); a test sets 0 to see every part.
        self._slice_floor = FLOOR
        self.stats = WriterStats()
        #: More writes for each batch, run inside its transaction (all or nothing).
        self.sinks: list[BatchSink] = []
        #: Called once per row batch as it is spooled (metrics); must not do I/O.
        self.observers: list[Callable[[list[Interaction]], None]] = []
        self._spool: Spool | None = None
        self._fresh: list[tuple[int, Interaction]] = []  # (kind, row), not yet spooled
        self._encoding = 0  # entries the spool step has taken from _fresh and not yet spooled
        self._open: dict[str, Interaction] = {}  # calls begun and not yet ended
        self._backlog: Backlog | None = None  # spooled, not yet written (memory or disk)
        self._next_seq = 0
        self._spooled_seq = -1  # last sequence number in the spool
        self._done_seq = -1  # every row up to this one is written (or set aside)
        self._replay: OrphanReplay | None = None  # dead processes' spools
        self._splitter: Splitter | None = None  # a refused batch, down to the row
        self._has_fresh = asyncio.Event()
        self._has_rows = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._closed = False
        self._last_drop_log = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Open this process's spool (replaying dead processes' ones first) and run."""
        try:
            self._spool = Spool(self._spool_dir)
        except OSError as exc:  # refuse to run with nowhere to keep rows
            raise ConfigError(
                f"invalid config: log_spool_dir: cannot write the log spool in "
                f"{self._spool_dir} ({exc.strerror or exc}); set log_spool_dir to a "
                "writable directory"
            ) from exc
        self._backlog = Backlog(self._spool, self._queue_size)
        # Looked up at each call, so a test can wrap the writer's _commit, _write and
        # _reachable.
        self._replay = OrphanReplay(
            self._spool, self._batch_size, lambda rows: self._commit(rows), self.stats
        )
        self._splitter = Splitter(
            lambda rows: self._write(rows),
            lambda: self._reachable(),
            self._db_timeout,
            self._abandoned,
            self.stats,
            self._spool,
        )
        self._tasks = [
            asyncio.create_task(self._run_spool(), name="llmrelay-log-spool"),
            asyncio.create_task(self._run_database(), name="llmrelay-log-writer"),
        ]

    async def submit(self, item: Interaction) -> None:
        """Take a finished call's row; never waits (see the module docstring)."""
        t0 = time.perf_counter_ns()
        self.stats.submitted += 1
        self._open.pop(item.id, None)
        if len(self._fresh) >= self._queue_size or self._closed:
            self._drop(1, "the spool cannot keep up" if not self._closed else "writer closed")
        else:
            self._fresh.append((ROW, item))
            if len(self._fresh) == 1:
                self._has_fresh.set()
        self.stats.submit_ns += time.perf_counter_ns() - t0

    def begin(self, stub: Interaction) -> None:
        """A call is about to reach its upstream: spool a stub of its row.

        If the process is killed before the call ends, the next start writes the stub
        as the row of a call that never finished (``gateway_stopped``) instead of
        leaving no trace of a call the provider may have billed. The call must later
        :meth:`submit` its row or :meth:`end` without one.
        """
        if len(self._fresh) >= self._queue_size or self._closed:
            return  # only the crash-time trace is lost, never a row
        self._open[stub.id] = stub
        self._fresh.append((BEGUN, stub))
        if len(self._fresh) == 1:
            self._has_fresh.set()

    def end(self, call_id: str) -> None:
        """A begun call ended without a row (it never reached a provider)."""
        stub = self._open.pop(call_id, None)
        if stub is not None and not self._closed:
            self._fresh.append((ENDED, stub))
            if len(self._fresh) == 1:
                self._has_fresh.set()

    @property
    def pending(self) -> int:
        """Rows taken but not yet in the database (in memory or only in the spool)."""
        return len(self._fresh) + self._encoding + self._spooled_seq - self._done_seq

    @property
    def spool_bytes(self) -> int:
        return self._spool.bytes if self._spool is not None else 0

    def stats_dict(self) -> dict[str, Any]:
        stats = self.stats.as_dict(self.pending, self.spool_bytes)
        # A dead process's spool is replayed in batches: ``replayed`` grows batch by
        # batch and ``pending`` does not count the rows still unread in that file, so
        # "replayed and nothing pending" is not "replay finished" without this.
        stats["replaying"] = self._replay is not None and self._replay.replaying
        return stats

    def _drop(self, n: int, why: str) -> None:
        self.stats.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log > 1.0:
            self._last_drop_log = now
            log.error("log rows dropped (%s): %d so far", why, self.stats.dropped)

    # -- stage 1: the spool ---------------------------------------------------------------
    async def _run_spool(self) -> None:
        while not (self._closing and not self._fresh):
            if not self._fresh:
                self._has_fresh.clear()
                await self._has_fresh.wait()
                continue
            if not self._closing:
                await asyncio.sleep(self._spool_interval)
            try:
                await self._spool_fresh()
            except Exception:  # a bug of ours: keep the task alive for the next rows
                log.exception("log spool step failed")

    async def _spool_fresh(self) -> None:
        assert self._spool is not None
        batch, self._fresh = without_settled_stubs(self._fresh), []
        self._encoding = len(batch)  # still pending while the step yields between slices
        try:
            await self._spool_batch(batch)
        finally:
            self._encoding = 0

    async def _spool_batch(self, batch: list[tuple[int, Interaction]]) -> None:
        assert self._spool is not None
        lines: list[bytes] = []
        frames: list[bytes] = []
        records: list[Record] = []
        first_seq = self._next_seq
        share = LoopShare(self._slice_floor)
        for start in range(0, len(batch), _SPOOL_PART):
            if start and share.spent():  # requests run between slices: no long stall
                try:
                    await share.pause()
                except asyncio.CancelledError:
                    # Stopped mid-batch (close's deadline): nothing of it is in the spool
                    # yet, so all of it goes back, to be counted where unspooled rows are.
                    self._fresh[:0] = batch
                    self._next_seq = first_seq
                    raise
            part = batch[start : start + _SPOOL_PART]
            rows = [it for kind, it in part if kind == ROW]
            if self._stream is not None:
                lines.append(b"".join(log_line(it) for it in rows))
            for observe in self.observers:
                try:
                    observe(rows)
                except Exception:
                    log.exception("batch observer failed")
            for kind, it in part:
                try:
                    frames.append(encode(self._next_seq, kind, it))
                except ValueError as exc:
                    if kind == ROW:
                        dead_letter(self._spool, self.stats, it, str(exc))
                    continue
                records.append((self._next_seq, kind, it))
                self._next_seq += 1
        self._write_log_lines(b"".join(lines))
        if not records:
            return
        if self._spool.bytes >= self._spool_max_bytes:
            self._drop(len(records), f"spool over {self._spool_max_bytes} bytes")
            self._next_seq -= len(records)
            return
        active = self._spool.active
        position = (active.path, active.size)
        try:
            self._spool.append(frames, records[-1][0])
        except OSError as exc:
            self._drop(len(records), f"cannot write the spool: {exc}")
            self._next_seq -= len(records)
            return
        self._encoding = 0  # counted from here on as spooled
        self._spooled_seq = records[-1][0]
        self.stats.spooled += len(records)
        assert self._backlog is not None
        self._backlog.add(records, position)
        self._caught_up.clear()
        self._has_rows.set()
        try:  # batched fsync: power loss costs at most this flush
            await asyncio.to_thread(self._spool.sync)
            if self._spool.rotate_if_full() and self._open:
                # Calls still running get their stub again in the new segment, so removing
                # the old one once its rows are written does not forget them.
                self._fresh[:0] = [(BEGUN, it) for it in self._open.values()]
                self._has_fresh.set()
        except OSError as exc:
            log.error("cannot fsync the log spool: %s", exc)

    def _write_log_lines(self, data: bytes) -> None:
        if self._stream is None or not data:
            return
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError) as exc:
            log.error("cannot write interaction log: %s", exc)

    # -- stage 2: the database -------------------------------------------------------------
    async def _run_database(self) -> None:
        while True:  # a bug of ours must not stop the writing for good
            try:
                await self._write_spooled()
                return  # closed and caught up
            except Exception:
                log.exception("log writer step failed; continuing in 1 s")
                await asyncio.sleep(1.0)

    async def _write_spooled(self) -> None:
        assert self._replay is not None
        await self._replay.run()
        scanned = time.monotonic()
        while True:
            assert self._backlog is not None
            # Behind (more than a batch waiting): bigger batches. A batch costs the loop
            # turns whatever its size (its round trips to the database, its slices), so
            # under load a fixed size wrote fewer rows than arrived.
            size = self._batch_size
            if self._spooled_seq - self._done_seq > size:
                size *= _CATCH_UP
            batch = self._backlog.take(size, self._done_seq)
            if not batch:
                if self._spooled_seq == self._done_seq:
                    self._caught_up.set()
                    if self._closed:
                        # Done: end here rather than wait for close's cancel. That cancel
                        # could be lost (asyncio.wait_for on 3.11 returns the inner result
                        # when it completed in the same turn: the _has_rows.set() of
                        # close), which held every shutdown for close's 1 s wait.
                        return
                self._has_rows.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._has_rows.wait(), _ORPHAN_SCAN_INTERVAL)
                if time.monotonic() - scanned > _ORPHAN_SCAN_INTERVAL:
                    await self._replay.run()
                    scanned = time.monotonic()
                if self._interval and not self._closing:
                    await asyncio.sleep(self._interval)  # let a batch gather
                continue
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[Record]) -> None:
        """One batch of the backlog into the database. A method of its own so that its
        rows are let go once written: a local of the waiting loop held the last batch
        until the next one came (and every full collection walked it meanwhile)."""
        rows = [it for _, kind, it in batch if kind == ROW]
        if rows:
            await self._commit(rows)
        self._done_seq = batch[-1][0]
        assert self._spool is not None
        self._spool.release(self._done_seq)

    async def _commit(self, rows: list[Interaction]) -> None:
        """Write ``rows``, waiting out a database outage; returns once all are handled."""
        assert self._splitter is not None
        delay = 0.1
        while True:
            try:
                await self._splitter.write_or_split(rows)
            except DatabaseAway as exc:
                if len(rows) > self._batch_size:
                    # A catch-up batch (up to _CATCH_UP x batch_size) that did not end
                    # within db_timeout: its halves, down to batch_size, before waiting
                    # as for an outage, so a slow database gets batches it can finish.
                    mid = len(rows) // 2
                    await self._commit(rows[:mid])
                    await self._commit(rows[mid:])
                    return
                if not self.stats.db_unavailable_since:
                    self.stats.db_unavailable_since = time.time()
                    log.error(
                        "database unavailable to the log writer (%s); rows are kept "
                        "in the spool and written when it returns",
                        exc,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.stats.db_unavailable_since:
                log.warning(
                    "database back for the log writer after %.1fs",
                    time.time() - self.stats.db_unavailable_since,
                )
                self.stats.db_unavailable_since = 0.0
            return

    async def _reachable(self) -> bool:
        async def probe() -> None:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await within(min(self._db_timeout, 5.0), probe(), self._abandoned)
        except Exception:
            return False
        return True

    async def _write(self, batch: list[Interaction]) -> None:
        t0 = time.perf_counter()
        async with self._engine.begin() as conn:
            # Exactly once: the ids already written (a replay) are left out, and with
            # them their summary increments.
            existing = await existing_ids(conn, requests, [it.id for it in batch])
            rows = [it for it in batch if it.id not in existing] if existing else batch
            if rows:
                await execute(conn, await self._statements(conn.dialect, rows))
        took = time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.written += len(rows)
        self.stats.duplicates += len(batch) - len(rows)
        self.stats.write_seconds += took
        self.stats.max_batch_seconds = max(self.stats.max_batch_seconds, took)

    async def _statements(self, dialect: Dialect, rows: list[Interaction]) -> list[Statement]:
        """The batch's statements: its ``requests`` and ``responses`` rows, then the
        sinks' (usage rows and summaries), in the order they must run."""
        bodies, shared = self._bodies, Shared()
        statements = await insert_statements(
            dialect,
            requests,
            REQUEST_COLUMNS,
            rows,
            partial(request_values, bodies=bodies),
            shared=shared,
        )
        statements += await insert_statements(
            dialect,
            responses,
            RESPONSE_COLUMNS,
            rows,
            partial(response_values, bodies=bodies),
            shared=shared,
        )
        for sink in self.sinks:
            statements += await sink(dialect, rows, shared)
        return statements

    # -- shutdown ----------------------------------------------------------------------------
    async def close(self, timeout: float = 30.0) -> None:
        """Spool what is left; write until ``timeout``; leave the rest for the next start."""
        if self._spool is None or self._closed:
            return
        self._closing = True
        deadline = time.monotonic() + timeout
        spool_task = self._tasks[0]
        self._has_fresh.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(spool_task), max(0.1, timeout / 2))
        self._closed = True
        self._has_rows.set()
        # Wait for the database to take the rest, unless it is known to be away: then the
        # rows stay in the spool and the exit is not held up.
        while not self._caught_up.is_set() and not self.stats.db_unavailable_since:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._caught_up.wait(), min(remaining, 0.1))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 1.0)
        self._tasks = []
        if self._backlog is not None:
            self._backlog.close()
        if self._replay is not None:
            self._replay.abandon()
        left = self.pending
        unspooled = sum(kind == ROW for kind, _ in self._fresh)
        if unspooled:
            self._drop(unspooled, "shutdown before they could be spooled")
        self._spool.close(all_written=left == 0)
        if left:
            log.error(
                "log writer stopped with %d rows not in the database; they stay in the "
                "spool (%s) and are written at the next start",
                left,
                self._spool_dir,
            )
