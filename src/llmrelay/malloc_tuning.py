"""glibc malloc for a long-running server: what the threads free goes back to the system.

Measured in the soak (bench/soak.sh, issue 14): the growth of the gateway's RSS is not
Python objects (tracemalloc: < 1 MB over 20,000 calls) but memory glibc's malloc keeps
after it was freed, in the arenas of the SQLite driver's threads. The log writer's
multi-row INSERTs are prepared fresh for each batch (the statement cache is off, see
``store/database.py``): SQLite allocates the statement's parse tree and program in the
connection's thread, a few MB for a batch of some hundred rows, and frees them when the
batch is done. The connection's page cache, allocated meanwhile, stays in between, so
the arena cannot shrink from its top, and what a larger batch than any before it needs
is new memory. The arenas grow in steps with the largest batch seen so far, which a
longer run keeps finding: RSS rose ~11 bytes a call over a million calls, and in
process, with the writer catching up in large batches, three arenas held 60 MB of
which 58 MB were free.

``malloc_trim(0)`` hands the free pages inside every arena back (``madvise``), not only
the top of the main heap. :func:`trim_periodically` runs it every few seconds in a
thread (ctypes releases the GIL around the call, so the event loop is not stopped; a
thread allocating meanwhile waits for its arena's lock for as long as that arena takes).

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
