"""llmrelay.malloc_tuning: freed C memory handed back to the system (issue 14, soak)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from llmrelay import malloc_tuning

glibc = pytest.mark.skipif(malloc_tuning.libc() is None, reason="the C library is not glibc")


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@glibc
def test_trim_gives_back_what_a_thread_freed() -> None:
    """What a thread's arena freed stays resident until trimmed: the soak's growth."""
    import threading

    def churn() -> None:
        # Many small blocks (not one mmap'd block, which free() unmaps at once), then
        # one kept at the end, so the arena cannot shrink from its top by itself.
        blocks = [bytearray(600) for _ in range(60_000)]
        keep = bytearray(600)
        del blocks
        kept.append(keep)

    kept: list[bytearray] = []
    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = _rss_kb()
    assert malloc_tuning.trim()
    assert _rss_kb() < before - 10_000  # ~36 MB were freed, well over 10 MB come back


def test_not_glibc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_tuning, "_libc", None)
    monkeypatch.setattr(malloc_tuning, "_loaded", True)
    assert malloc_tuning.trim() is False
    assert malloc_tuning.start_trimmer() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is Linux's")
async def test_trimmer_runs_in_a_thread_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[str] = []
    monkeypatch.setattr(malloc_tuning, "_libc", object())
    monkeypatch.setattr(malloc_tuning, "_loaded", True)
    monkeypatch.setattr(
        malloc_tuning, "trim", lambda: threads.append(threading.current_thread().name) or True
    )
    task = malloc_tuning.start_trimmer(0.01)
    assert task is not None
    while len(threads) < 3:
        await asyncio.sleep(0.01)
    malloc_tuning.stop_trimmer(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert threading.main_thread().name not in threads
    malloc_tuning.stop_trimmer(None)
