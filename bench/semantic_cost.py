"""Search time of the semantic cache's in-process index (``cache/semantic.py``).

    .venv/bin/python bench/semantic_cost.py

Random unit vectors of 384 dimensions (all-MiniLM-L6-v2's size), ``n`` questions in
one context (the worst case: every question under one system prompt), 50 searches each;
prints the median search time. The index is scanned in pure Python, so the time grows
with the context: ``response_cache.max_vectors_per_context`` (1,000) bounds it.
"""

from __future__ import annotations

import random
import statistics
import time

from llmrelay.cache.embedder import normalised
from llmrelay.cache.semantic import SemanticIndex

DIMS = 384


def vector(rng: random.Random) -> list[float]:
    return normalised([rng.gauss(0, 1) for _ in range(DIMS)])


def main() -> None:
    rng = random.Random(7)
    for n in (100, 1000, 10_000):
        index = SemanticIndex(max_vectors=n, max_per_context=n)
        for i in range(n):
            index.add("ctx", vector(rng), f"k{i}", ttl=3600)
        times = []
        for _ in range(50):
            query = vector(rng)
            t0 = time.perf_counter()
            index.search("ctx", query, 0.95)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{n:>7} questions in one context: search p50 {statistics.median(times):8.2f} ms")


if __name__ == "__main__":
    main()
