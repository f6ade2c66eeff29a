"""Row ids and timestamps, in a module that imports nothing of SQLAlchemy.

The request path needs :data:`new_id` for every call (``context.py``); importing it from
:mod:`llmrelay.store.schema` loaded SQLAlchemy's ORM, about half of ``import
llmrelay.app`` (issue 14). The schema re-exports both names.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime


class _IdSource:
    """Unique 32-hex-digit ids: 64 random bits per process, then a counter.

    Three ids per request made ``uuid4()`` (and even ``os.urandom``, a system call each)
    a visible share of the relay's CPU; uniqueness is all these ids need. The random
    half is redrawn in a forked child (``os.register_at_fork``) so two workers never
    share it; asking ``os.getpid()`` on every id instead was a system call per id.
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._prefix = os.urandom(8).hex()
        os.register_at_fork(after_in_child=self._redraw)

    def _redraw(self) -> None:
        self._prefix = os.urandom(8).hex()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_id = _IdSource()


def utcnow() -> datetime:
    return datetime.now(UTC)
