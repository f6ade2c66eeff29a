"""Search time of the semantic cache's in-process index (``cache/semantic.py``).

    .venv/bin/python bench/semantic_cost.py

Random unit vectors of 384 dimensions (all-MiniLM-L6-v2's size), ``n`` questions in
one context (the worst case: every question under one system prompt), 50 searches each
(5 for the pure-Python scan of 100,000); prints the median search time and the time to
add one question, for the numpy matrix and the pure-Python scan (the fallback without
numpy).
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
    pool = [vector(rng) for _ in range(1000)]
    for vectorised in (True, False):
        label = "numpy " if vectorised else "python"
        for n in (100, 1000, 10_000, 100_000):
            index = SemanticIndex(max_vectors=n, max_per_context=n, vectorised=vectorised)
            for i in range(n):
                index.add("ctx", pool[i % len(pool)], f"k{i}", ttl=3600)
            adds = []
            for i in range(20):  # the context is full: each add also drops the oldest
                t0 = time.perf_counter()
                index.add("ctx", pool[i], f"new{i}", ttl=3600)
                adds.append((time.perf_counter() - t0) * 1000)
            times = []
            for _ in range(5 if n == 100_000 and not vectorised else 50):
                query = vector(rng)
                t0 = time.perf_counter()
                index.search("ctx", query, 0.95)
                times.append((time.perf_counter() - t0) * 1000)
            print(
                f"{label} {n:>7} questions in one context: search p50 "
                f"{statistics.median(times):8.2f} ms, add p50 {statistics.median(adds):6.3f} ms"
            )


if __name__ == "__main__":
    main()
