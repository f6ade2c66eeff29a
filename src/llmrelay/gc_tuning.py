"""Garbage collection for a long-running server: the start-up heap is frozen.

After start-up the heap holds ~1 million objects that live as long as the process
(SQLAlchemy's and our modules, the price catalog, compiled statements). CPython's full
collection walks all of them: measured 100-300 ms on this machine, one stall of the
event loop each time, so a request waiting behind it sees it in its latency
(bench/loop_stalls.py). ``gc.freeze()`` moves them to the permanent generation, which
no collection walks; what requests allocate is still collected as before.

The thresholds stay CPython's (700, 10, 10): raising the young one to 10,000 measured
worse, ~15x fewer young collections but each ~25x longer (the rows queued in the log
writer survive them), 181 ms of collector time per 3,000 calls instead of 113 ms.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once, when start-up is done: collect, then freeze what is left."""
    gc.collect()
    gc.freeze()
