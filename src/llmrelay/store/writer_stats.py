"""What the log writer has done, for ``/api/db-stats`` and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    written: int = 0
    batches: int = 0
    failed_batches: int = 0
    write_seconds: float = 0.0
    max_batch_seconds: float = 0.0
    submit_ns: int = 0
    #: Rows appended to the spool file.
    spooled: int = 0
    #: Rows the database refused even after bounding, set aside in dead-letter.jsonl.
    dead_lettered: int = 0
    #: Rows lost because the local disk could not keep up (never for a database fault).
    dropped: int = 0
    #: Rows found already written when a batch was retried or replayed.
    duplicates: int = 0
    #: Rows replayed from the spool of a process that stopped before writing them.
    replayed: int = 0
    #: Torn records at the end of a replayed spool (a write cut by SIGKILL).
    torn_records: int = 0
    #: Calls a stopped process had begun and never finished, recorded at replay.
    unfinished_calls: int = 0
    #: Unix time the database stopped answering; 0 while it answers.
    db_unavailable_since: float = 0.0

    def as_dict(self, queue_depth: int, spool_bytes: int = 0) -> dict[str, Any]:
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
            "hot_path_overhead_ms_per_request": round(self.submit_ns / 1e6 / self.submitted, 5)
            if self.submitted
            else 0.0,
            "spooled": self.spooled,
            "spool_bytes": spool_bytes,
            "dead_lettered": self.dead_lettered,
            "dropped": self.dropped,
            "duplicates": self.duplicates,
            "replayed": self.replayed,
            "torn_records": self.torn_records,
            "unfinished_calls": self.unfinished_calls,
            "database_available": not self.db_unavailable_since,
        }
