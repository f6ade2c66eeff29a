"""Embedding time of the local all-MiniLM-L6-v2 model (``cache/local_embedder.py``).

    taskset -c 0 .venv/bin/python bench/embedding_cost.py

Loads the model once (timed), then embeds questions of about 10, 40 and 200 word pieces
one at a time (what a semantic lookup does: one question per call), ``--n`` times each,
and prints p50 / p99 in milliseconds. numpy's BLAS may use every core it is given:
``taskset`` pins it to one, as the gateway's worker would be.
"""

from __future__ import annotations

import argparse
import statistics
import time

from llmrelay.cache.local_embedder import LocalEmbedder

QUESTIONS = {
    "short (~10 pieces)": "How old is the CEO of Apple?",
    "medium (~40 pieces)": (
        "I am planning a trip to Lisbon in March with two children; which neighbourhoods "
        "are quiet at night but still close to the tram lines and the riverside?"
    ),
    "long (~200 pieces)": " ".join(
        ["Summarise the following paragraph about the history of the printing press."] * 15
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    embedder = LocalEmbedder()
    t0 = time.perf_counter()
    embedder.load()
    print(f"model load: {(time.perf_counter() - t0) * 1000:.0f} ms")
    for label, text in QUESTIONS.items():
        embedder.embed_sync([text])  # warm
        before = embedder.tokens
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            embedder.embed_sync([text])
            times.append((time.perf_counter() - t0) * 1000)
        pieces = (embedder.tokens - before) // args.n
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"{label:<20} {pieces:>4} pieces: p50 {statistics.median(times):7.2f} ms"
            f"  p99 {p99:7.2f} ms"
        )


if __name__ == "__main__":
    main()
