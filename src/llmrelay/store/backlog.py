"""Rows in the spool and not yet in the database, handed out in spool order.

The first ``limit`` of them are also kept in memory; past that the rest exist only on
disk and are read back from the spool's segments when the memory copies are used up,
so however long the database is away, memory holds at most ``limit`` rows. The
memory copies are always the oldest rows not yet taken: once one row had to stay on
disk, every later one does too, until reading back has caught up with the spool.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from llmrelay.store.spool import Record, SegmentReader, Spool


class Backlog:
    def __init__(self, spool: Spool, limit: int) -> None:
        self._spool = spool
        self._limit = limit
        self._memory: deque[Record] = deque()
        self._on_disk_only = False
        self._reader: SegmentReader | None = None
        #: Where the first row not in memory is: (segment, offset).
        self._resume_at: tuple[Path, int] | None = None

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    def add(self, records: list[Record], position: tuple[Path, int]) -> None:
        """Rows just appended to the spool at ``position`` (segment, offset)."""
        if self._on_disk_only:
            return
        if len(self._memory) + len(records) <= self._limit:
            self._memory.extend(records)
        else:
            self._on_disk_only, self._resume_at = True, position

    def take(self, n: int, after_seq: int) -> list[Record]:
        """Up to ``n`` next rows (all with sequence numbers above ``after_seq``)."""
        if self._memory:
            return [self._memory.popleft() for _ in range(min(n, len(self._memory)))]
        if not self._on_disk_only:
            return []
        while True:
            if self._reader is None:
                assert self._resume_at is not None
                self._reader = SegmentReader(*self._resume_at)
            records = [r for r in self._reader.read(n) if r[0] > after_seq]
            if records:
                self._resume_at = (self._reader.path, self._reader.offset)
                return records
            self._reader.close()
            paths = [s.path for s in self._spool.segments]
            done_with, self._reader = self._reader.path, None
            if done_with not in paths:  # written in full and removed meanwhile: go on from
                self._resume_at = (paths[0], 0)  # the oldest left (rows read are skipped)
                continue
            here = paths.index(done_with)
            if here == len(paths) - 1:  # read up to the end of the spool: back to memory
                self._on_disk_only, self._resume_at = False, None
                return []
            self._resume_at = (paths[here + 1], 0)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
