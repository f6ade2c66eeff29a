"""CPU cost per request of the batch log writer (both threads), on SQLite.

    .venv/bin/python bench/writer_cost.py

Writes 9 batches of 200 interactions through ``LogWriter._write``, first with the
``requests`` + ``responses`` rows only, then with the governance sink (usage rows,
monthly summaries, spend counters) too, and prints CPU microseconds per request.
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
from llmrelay.store.schema import new_id
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.interaction import Interaction

ROWS, BATCHES = 200, 10


def interaction() -> Interaction:
    return Interaction(
        id=new_id(), request_id="req_" + new_id(), created_at=datetime.now(UTC),
        route="/v1/chat/completions", method="POST", status=200, latency_ms=1.2,
        overhead_ms=0.3, model="gpt-4o-mini", provider="bench", upstream_model="gpt-4o-mini",
        api_key_id="k" * 32, key_name="bench", client_ip="127.0.0.1", user_agent="wrk",
        usage=Usage(10, 20, 30), finish_reason="stop", cost_nanos=12345,
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = database.create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'w.db'}")
        await database.migrate(engine)
        for sinks in ([], [write_usage]):
            writer = LogWriter(engine, queue_size=100_000, batch_size=500, flush_interval=0,
                               log_stream=None, store_bodies=False)
            writer.sinks.extend(sinks)
            batches = [[interaction() for _ in range(ROWS)] for _ in range(BATCHES)]
            await writer._write(batches[0])  # warm-up: statement plans, connection
            cpu, main_thread = time.process_time(), time.thread_time()
            for batch in batches[1:]:
                await writer._write(batch)
            n = ROWS * (BATCHES - 1)
            label = "requests+responses" if not sinks else "+ usage rows and summaries"
            print(f"{label:28} CPU {1e6 * (time.process_time() - cpu) / n:6.0f} us/request "
                  f"(event-loop thread {1e6 * (time.thread_time() - main_thread) / n:4.0f})")
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
