"""One page of a listing, the same shape for every admin resource.

``{"data": [...], "total": N, "limit": L, "offset": O}``: offset paging, since every
admin listing is small enough (keys, teams, providers) or filtered by time and indexed
(requests, audit) for ``OFFSET`` to stay cheap; ``limit`` is capped at 500.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]


class Page(BaseModel, Generic[T]):
    data: list[T]
    total: int
    limit: int
    offset: int
