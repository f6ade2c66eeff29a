"""glibc malloc for a long-running server: what the threads free goes back to the system.

The SQLite driver runs each pooled connection in a thread of its own, and glibc gives each
such thread an arena. The log writer's multi-row INSERTs are prepared fresh for each batch
(the statement cache is off, see ``store/database.py``): SQLite allocates the statement's
parse tree and program in the connection's thread and frees them when the batch is done,
but the connection's page cache, allocated meanwhile, sits above them, so the arena cannot
shrink from its top and keeps the freed pages resident. In process, with the writer
catching up on a backlog in large batches (as after a database outage), three thread arenas
held 60 MB of which 58 MB were free (bench/RESULTS.md, "Soak RSS").

``malloc_trim(0)`` hands the free pages inside every arena back (``madvise``), not only
the top of the main heap: 10-35 MB a trim there, 1-4 ms of CPU. :func:`trim_periodically`
runs it every few seconds in a thread (ctypes releases the GIL around the call, so the
event loop is not stopped; a thread allocating meanwhile waits for its arena's lock for as
long as that arena takes). In the steady soak, where the writer keeps up, there is little to
give back and the trim neither lowered the RSS growth nor cost measurable CPU.

Only where the C library is glibc; elsewhere (musl, macOS) the functions do nothing.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

#: Seconds between trims: the writer commits every ``log_flush_interval`` (0.2 s), so a
#: trim follows a few dozen batches; one trim costs well under a millisecond of CPU.
TRIM_INTERVAL = 5.0


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at ``import llmrelay.app`` (its budget)

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no such symbol)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return libc


_libc: Any = None
_loaded = False


def libc() -> Any:
    """glibc through ctypes, or ``None`` where the C library is another one."""
    global _libc, _loaded
    if not _loaded:
        _libc, _loaded = _load_libc(), True
    return _libc


def trim() -> bool:
    """``malloc_trim(0)``: True if memory was given back, False if none (or not glibc)."""
    lib = libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


async def trim_periodically(interval: float = TRIM_INTERVAL) -> None:
    """Trim every ``interval`` seconds, in a thread, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim)


def start_trimmer(interval: float = TRIM_INTERVAL) -> asyncio.Task[None] | None:
    """:func:`trim_periodically` as a task of the running loop (``None`` if not glibc)."""
    if libc() is None or interval <= 0:
        return None
    return asyncio.create_task(trim_periodically(interval), name="llmrelay-malloc-trim")


def stop_trimmer(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
