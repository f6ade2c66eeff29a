"""The batch writer: requests and responses reach the database without the client waiting.

Handlers hand a finished :class:`Interaction` to :meth:`LogWriter.submit`, which costs a
queue append. One background task drains the bounded queue in batches: it inserts the
``requests`` rows and their ``responses`` rows in one transaction and writes the JSON
interaction log lines in one ``write``. When the queue is full ``submit`` waits (after
the client already has its answer) rather than drop a row; a failed batch is retried
with backoff, never discarded; :meth:`close` flushes everything on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llmrelay.store.bulk import insert_rows
from llmrelay.store.schema import RequestRow, ResponseRow, new_id
from llmrelay.telemetry.interaction import Interaction, redact

log = logging.getLogger("llmrelay.writer")

#: Writes more rows for a batch on the batch's connection (same transaction).
BatchSink = Callable[[AsyncConnection, list[Interaction]], Awaitable[None]]


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    written: int = 0
    batches: int = 0
    failed_batches: int = 0
    write_seconds: float = 0.0
    max_batch_seconds: float = 0.0
    submit_ns: int = 0
    blocked_submits: int = 0

    def as_dict(self, queue_depth: int) -> dict[str, Any]:
        per_row_ms = self.write_seconds * 1000 / self.written if self.written else 0.0
        return {
            "submitted": self.submitted,
            "written": self.written,
            "pending": queue_depth,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "avg_batch_rows": round(self.written / self.batches, 2) if self.batches else 0,
            "db_write_ms_per_request": round(per_row_ms, 4),
            "max_batch_ms": round(self.max_batch_seconds * 1000, 3),
            "hot_path_overhead_ms_per_request": round(
                self.submit_ns / 1e6 / self.submitted, 5
            ) if self.submitted else 0.0,
            "blocked_submits": self.blocked_submits,
        }


class LogWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        queue_size: int,
        batch_size: int,
        flush_interval: float,
        log_stream: IO[bytes] | None,
        store_bodies: bool,
    ) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[Interaction] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._interval = flush_interval
        self._stream = log_stream
        self._bodies = store_bodies
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()
        #: More writes for each batch, run inside its transaction (all or nothing).
        self.sinks: list[BatchSink] = []
        #: Called once per batch before it is written (metrics); must not do I/O.
        self.observers: list[Callable[[list[Interaction]], None]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llmrelay-log-writer")

    async def submit(self, item: Interaction) -> None:
        t0 = time.perf_counter_ns()
        self.stats.submitted += 1
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.blocked_submits += 1
            await self._queue.put(item)
        self.stats.submit_ns += time.perf_counter_ns() - t0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._interval and not self._closing:
                await asyncio.sleep(self._interval)
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._write_with_retry(batch)
            for _ in batch:
                self._queue.task_done()

    async def _write_with_retry(self, batch: list[Interaction]) -> None:
        self._write_log_lines(batch)
        for observe in self.observers:
            try:
                observe(batch)
            except Exception:
                log.exception("batch observer failed")
        delay = 0.1
        while True:
            try:
                await self._write(batch)
                return
            except Exception as exc:  # database down or locked: keep the rows, retry
                self.stats.failed_batches += 1
                log.error("log batch of %d rows failed, retrying in %.1fs: %s",
                          len(batch), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write(self, batch: list[Interaction]) -> None:
        t0 = time.perf_counter()
        requests = []
        responses = []
        for it in batch:
            requests.append(
                {
                    "id": it.id,
                    "request_id": it.request_id,
                    "created_at": it.created_at,
                    "route": it.route,
                    "method": it.method,
                    "model": it.model,
                    "provider": it.provider,
                    "upstream_model": it.upstream_model,
                    "api_key_id": it.api_key_id,
                    "stream": it.stream,
                    "status_code": it.status,
                    "client_ip": it.client_ip,
                    "user_agent": (it.user_agent or "")[:300] or None,
                    "body": _text(it.request_body) if self._bodies else None,
                    "attempts": it.attempts or None,
                    "cost_nanos": it.cost_nanos,
                }
            )
            responses.append(
                {
                    "id": new_id(),
                    "request_id": it.id,
                    "created_at": it.created_at,
                    "status_code": it.status,
                    "latency_ms": it.latency_ms,
                    "overhead_ms": it.overhead_ms,
                    **it.token_columns(),
                    "finish_reason": it.finish_reason,
                    "error_type": it.error_type,
                    "error_message": redact(it.error_message) if it.error_message else None,
                    "body": _text(it.response_body) if self._bodies else None,
                    "bytes_out": it.bytes_out,
                }
            )
        async with self._engine.begin() as conn:
            await insert_rows(conn, RequestRow, requests)
            await insert_rows(conn, ResponseRow, responses)
            for sink in self.sinks:  # e.g. usage rows and summaries, in the same transaction
                await sink(conn, batch)
        took = time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.written += len(batch)
        self.stats.write_seconds += took
        self.stats.max_batch_seconds = max(self.stats.max_batch_seconds, took)

    def _write_log_lines(self, batch: list[Interaction]) -> None:
        if self._stream is None:
            return
        data = b"".join(orjson.dumps(it.log_entry()) + b"\n" for it in batch)
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError) as exc:
            log.error("cannot write interaction log: %s", exc)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush every queued row, then stop the task."""
        self._closing = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.error("log writer flush timed out with %d rows pending", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def _text(body: bytes | None) -> str | None:
    return redact(body.decode("utf-8", "replace")) if body is not None else None
