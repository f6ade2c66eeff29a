"""Weighted choice: the draw follows the weights (chi-square), zero weights never win."""

from __future__ import annotations

import random

from llmrelay.routing.walk import pick_weighted

# Chi-square critical values at p = 0.001 (a correct draw fails 1 time in 1000).
CHI2_CRITICAL_P001 = {1: 10.83, 2: 13.82, 3: 16.27}


def chi_square(counts: list[int], weights: list[float]) -> float:
    n, total = sum(counts), sum(weights)
    return sum(
        (c - n * w / total) ** 2 / (n * w / total) for c, w in zip(counts, weights, strict=True)
    )


def test_draws_follow_weights_that_do_not_sum_to_one() -> None:
    weights = [5.0, 3.0, 2.0]
    rng = random.Random(1234)
    counts = [0, 0, 0]
    for _ in range(20_000):
        counts[pick_weighted(weights, rng)] += 1
    assert chi_square(counts, weights) < CHI2_CRITICAL_P001[2], counts


def test_zero_weight_is_never_drawn() -> None:
    rng = random.Random(5)
    picks = {pick_weighted([0.0, 1.0, 0.0, 0.5], rng) for _ in range(5000)}
    assert picks == {1, 3}
