"""One context's question vectors as a numpy matrix: a search is one matrix product.

The semantic index (``cache/semantic.py``) keeps its bookkeeping (entry keys, order,
eviction) in Python lists; with numpy installed (the ``local-embeddings`` extra brings
it) each context also has a :class:`Rows` whose row ``i`` is the list's item ``i``.
Scoring 100,000 stored 384-dimension questions is then ~47 ms instead of ~3.1 s in pure
Python, 10,000 ~1.7 ms instead of ~360 ms (bench/semantic_cost.py). Rows live in a
buffer that grows by doubling; dropping the oldest only moves the start (the buffer is
compacted once half of it is dead), so a full context costs no copy per question added.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def available() -> bool:
    """Whether numpy is installed (else the index scans in pure Python).

    Found, not imported: every gateway builds a semantic index, few use it, and
    importing numpy is ~0.3 s of start-up; the first :class:`Rows` imports it."""
    return importlib.util.find_spec("numpy") is not None


class Rows:
    """Vectors of one width with their expiry times (``time.monotonic()``)."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.dim = dim
        self._np: Any = np
        self._vectors: npt.NDArray[np.float32] = np.zeros((16, dim), dtype=np.float32)
        self._expires: npt.NDArray[np.float64] = np.zeros(16, dtype=np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, vector: list[float], expires: float) -> None:
        """A vector of another width is kept as zeros: it never reaches a threshold."""
        if self._end == len(self._vectors):
            self._grow()
        row = self._vectors[self._end]
        if len(vector) == self.dim:
            row[:] = vector
        else:
            row[:] = 0.0
        self._expires[self._end] = expires
        self._end += 1

    def drop_first(self) -> None:
        self._start += 1
        if self._start * 2 > len(self._vectors):
            self._compact()

    def remove(self, i: int) -> None:
        """Drop row ``i`` in place (a refreshed question: rows after it move up one)."""
        at = self._start + i
        self._vectors[at : self._end - 1] = self._vectors[at + 1 : self._end]
        self._expires[at : self._end - 1] = self._expires[at + 1 : self._end]
        self._end -= 1

    def keep(self, mask: Any) -> None:
        """Keep the rows where ``mask`` (a sequence of bools, one per row) is true."""
        np = self._np
        keep = np.asarray(mask, dtype=bool)
        vectors = self._vectors[self._start : self._end][keep]
        expires = self._expires[self._start : self._end][keep]
        size = max(16, len(vectors) * 2)
        self._vectors = np.zeros((size, self.dim), dtype=np.float32)
        self._expires = np.zeros(size, dtype=np.float64)
        self._vectors[: len(vectors)] = vectors
        self._expires[: len(vectors)] = expires
        self._start, self._end = 0, len(vectors)

    def live(self, now: float) -> Any:
        """A bool per row: not expired at ``now``."""
        return self._expires[self._start : self._end] > now

    def scores(self, vector: list[float]) -> Any:
        """Cosine similarity of each row with ``vector`` (unit vectors: a dot product)."""
        np = self._np
        query = np.asarray(vector, dtype=np.float32)
        return self._vectors[self._start : self._end] @ query

    def _grow(self) -> None:
        np = self._np
        if self._start:
            self._compact()
            if self._end < len(self._vectors):
                return
        size = len(self._vectors) * 2
        vectors = np.zeros((size, self.dim), dtype=np.float32)
        expires = np.zeros(size, dtype=np.float64)
        vectors[: self._end] = self._vectors[: self._end]
        expires[: self._end] = self._expires[: self._end]
        self._vectors, self._expires = vectors, expires

    def _compact(self) -> None:
        n = len(self)
        self._vectors[:n] = self._vectors[self._start : self._end]
        self._expires[:n] = self._expires[self._start : self._end]
        self._start, self._end = 0, n
