"""Times in admin answers: always with their offset (RFC 3339), whatever the database.

PostgreSQL hands back ``timestamptz`` values with their zone, SQLite hands back the same
columns naive (it stores text without one). Every stored time is UTC, so a naive one is
UTC: stamped so, an answer reads ``2026-12-03T07:37:13+00:00`` on both, which is what the
OpenAPI document's ``date-time`` promises (the schemathesis fuzz test checks it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


Timestamp = Annotated[datetime, AfterValidator(as_utc)]
