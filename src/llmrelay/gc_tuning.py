"""Garbage collection for a long-running server: the start-up heap is frozen.

After start-up the heap holds ~120,000 tracked objects that live as long as the process
(SQLAlchemy's and our modules, the price catalog, compiled statements; the bench config,
2026-12-04). CPython's full collection walks all of them: measured 70 ms on a quiet core
and 100-300 ms on a loaded one, one stall of the event loop each time, so a request
waiting behind it sees it in its latency (bench/loop_stalls.py). ``gc.freeze()`` moves
them to the permanent generation, which no collection walks; what requests allocate is
still collected as before.

The thresholds stay CPython's (700, 10, 10): raising the young one to 10,000 measured
worse, ~15x fewer young collections but each ~25x longer (the rows queued in the log
writer survive them), 181 ms of collector time per 3,000 calls instead of 113 ms.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any


def freeze_startup_heap() -> None:
    """Call when start-up is done: collect, then freeze what is left."""
    gc.collect()
    gc.freeze()


def freeze_after(build: asyncio.Task[Any] | None) -> None:
    """Freeze again once ``build`` (the admin API, built aside after start-up) is done.

    The admin API is start-up heap built late: ~35,000 objects (FastAPI, pydantic's
    schemas) that live as long as the process. Left unfrozen, every full collection
    walked them: 14-22 ms each on this machine, against ~0 with only the frozen heap
    (bench/loop_stalls.py --admin-warm, as ``llmrelay serve`` runs). Freezing costs one
    collection of that heap, once, about a second after the server started listening.
    """
    if build is not None:
        build.add_done_callback(lambda _: freeze_startup_heap())
