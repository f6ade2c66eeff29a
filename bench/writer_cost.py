"""CPU cost per request of the log writer's three steps, on SQLite.

    .venv/bin/python bench/writer_cost.py

1. What the request path pays: ``submit`` (an append to a list), ``begin`` + ``end``
   (the stub a call leaves as it reaches its upstream) and building that stub.
2. Spooling: encoding, the ``write`` to the spool file and the batched ``fsync``
   (``LogWriter._spool_fresh``, in the writer's task, not on the request path).
3. The database: 9 batches of 200 interactions through ``LogWriter._write`` (the
   existence check for exactly-once, bounded ``requests`` + ``responses`` rows), first
   alone, then with the governance sink (usage rows, monthly summaries, spend counters).

Prints CPU microseconds per request (both threads; the event-loop thread separately).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from llmrelay.governance.usage import write_usage
from llmrelay.providers.base import Usage
from llmrelay.store import database
from llmrelay.store.backlog import Backlog
from llmrelay.store.schema import new_id
from llmrelay.store.spool import ROW
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.interaction import Interaction

ROWS, BATCHES = 200, 10


def interaction() -> Interaction:
    return Interaction(
        id=new_id(),
        request_id="req_" + new_id(),
        created_at=datetime.now(UTC),
        route="/v1/chat/completions",
        method="POST",
        status=200,
        latency_ms=1.2,
        overhead_ms=0.3,
        model="gpt-4o-mini",
        provider="bench",
        upstream_model="gpt-4o-mini",
        api_key_id="k" * 32,
        key_name="bench",
        client_ip="127.0.0.1",
        user_agent="wrk",
        usage=Usage(10, 20, 30),
        finish_reason="stop",
        cost_nanos=12345,
    )


def report(label: str, n: int, cpu: float, main_thread: float) -> None:
    print(
        f"{label:40} CPU {1e6 * (time.process_time() - cpu) / n:7.1f} us/request "
        f"(event-loop thread {1e6 * (time.thread_time() - main_thread) / n:6.1f})"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = database.create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'w.db'}")
        await database.migrate(engine)
        for sinks in ([], [write_usage]):
            writer = LogWriter(
                engine,
                queue_size=100_000,
                batch_size=500,
                flush_interval=0,
                log_stream=None,
                store_bodies=False,
                spool_dir=Path(tmp) / f"spool{len(sinks)}",
            )
            writer.sinks.extend(sinks)
            writer.start()
            batches = [[interaction() for _ in range(ROWS)] for _ in range(BATCHES)]
            await writer._write(batches[0])  # warm-up: statement plans, connection
            n = ROWS * (BATCHES - 1)
            if not sinks:
                cpu, main_thread = time.process_time(), time.thread_time()
                for batch in batches[1:]:
                    for it in batch:
                        await writer.submit(it)
                    writer._fresh.clear()
                report("submit (request path)", n, cpu, main_thread)
                cpu, main_thread = time.process_time(), time.thread_time()
                stubs = [interaction() for _ in range(n)]
                report("building a stub Interaction", n, cpu, main_thread)
                cpu, main_thread = time.process_time(), time.thread_time()
                for stub in stubs:  # the stub each call leaves as it reaches its upstream
                    writer.begin(stub)
                    writer.end(stub.id)
                writer._fresh.clear()
                report("begin + end (request path)", n, cpu, main_thread)
                cpu, main_thread = time.process_time(), time.thread_time()
                for batch in batches[1:]:
                    writer._fresh = [(ROW, it) for it in batch]
                    await writer._spool_fresh()
                    assert writer._spool is not None
                    writer._backlog = Backlog(writer._spool, 100_000)  # not for the db
                report("spool: encode, write, fsync", n, cpu, main_thread)
            cpu, main_thread = time.process_time(), time.thread_time()
            for batch in batches[1:]:
                await writer._write(batch)
            label = "db: requests+responses" if not sinks else "db: + usage rows and summaries"
            report(label, n, cpu, main_thread)
            writer._spooled_seq = writer._done_seq  # nothing left to write: close at once
            await writer.close(timeout=5)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
