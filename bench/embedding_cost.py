"""Embedding time of the semantic cache: the local all-MiniLM-L6-v2 model
(``cache/local_embedder.py``), and with ``--provider`` a provider model called through
llmrelay's own adapter and transport (``cache/embedder.py``).

    taskset -c 0 .venv/bin/python bench/embedding_cost.py
    .venv/bin/python bench/embedding_cost.py --provider

``--provider`` calls the mock upstream (a real HTTP server on loopback speaking OpenAI's
``/v1/embeddings``, in a thread of this process), so it measures what the gateway adds
to a provider's own embedding time: request building, the HTTP round trip on loopback,
decoding and normalising the vector. A real provider adds its network and model time
(tens to hundreds of milliseconds) on top.

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


def provider_times(n: int) -> None:
    import asyncio

    from llmrelay.cache.embedder import ProviderEmbedder
    from llmrelay.config import load_settings
    from llmrelay.mock_upstream import MockUpstream
    from llmrelay.providers.mock import MockTransport
    from llmrelay.providers.registry import build_registry
    from llmrelay.routing.resolve import Resolver
    from llmrelay.upstream import HttpTransport

    async def run(base_url: str) -> None:
        settings = load_settings(
            env={},
            overrides={
                "providers": [
                    {
                        "name": "up",
                        "type": "openai_compatible",
                        "base_url": base_url,
                        "api_key": "bench-key",
                    }
                ],
                "mock_provider": False,
            },
        )
        http = HttpTransport(max_body_bytes=settings.max_upstream_body_bytes)
        registry = build_registry(settings, {}, http, MockTransport(), [])
        embedder = ProviderEmbedder(Resolver(registry, {}, {}), "up/text-embedding-3-small", 10)
        try:
            for label, text in QUESTIONS.items():
                await embedder.embed(text)  # warm: connection opened
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    vector = await embedder.embed(text)
                    times.append((time.perf_counter() - t0) * 1000)
                report(f"{label} {len(vector)}-d", times)
        finally:
            await http.close()

    with MockUpstream(host="127.0.0.1", port=0) as upstream:
        asyncio.run(run(upstream.base_url))


def report(label: str, times: list[float]) -> None:
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{label:<32} p50 {statistics.median(times):7.2f} ms  p99 {p99:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument(
        "--provider", action="store_true", help="a provider model through the mock upstream"
    )
    args = parser.parse_args()
    if args.provider:
        provider_times(args.n)
        return
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
