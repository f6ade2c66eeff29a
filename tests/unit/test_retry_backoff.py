"""Backoff math, retry decisions, retry-after parsing and error classes."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from llmrelay.errors import CapabilityMissing, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from llmrelay.routing.classify import classes_of, parse_error_list, retry_after_seconds
from llmrelay.routing.retry import RetryPolicy, backoff_bounds, backoff_delay, decide

POLICY = RetryPolicy(attempts=5, base_delay=0.5, max_delay=3.0)


def upstream(
    status: int, headers: dict[str, str] | None = None, code: str | None = None
) -> UpstreamError:
    return UpstreamError("x", status=status, headers=headers, code=code)


def test_exponential_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    assert [backoff_bounds(POLICY, n) for n in (1, 2, 3, 4, 5)] == [
        (0.25, 0.5),
        (0.5, 1.0),
        (1.0, 2.0),
        (1.5, 3.0),
        (1.5, 3.0),
    ]
    rng = random.Random(7)
    for n in range(1, 6):
        low, high = backoff_bounds(POLICY, n)
        draws = [backoff_delay(POLICY, n, rng) for _ in range(2000)]
        assert low <= min(draws) and max(draws) <= high
        # jitter is spread over the whole upper half, not stuck at one end
        assert max(draws) - min(draws) > 0.9 * (high - low)


def test_constant_backoff_without_exponential() -> None:
    flat = RetryPolicy(attempts=3, base_delay=0.4, exponential_backoff=False)
    assert {backoff_bounds(flat, n) for n in (1, 2, 3)} == {(0.2, 0.4)}


def test_decide_retries_only_retryable_statuses_until_exhausted() -> None:
    rng = random.Random(1)
    d = decide(POLICY, upstream(503), 1, rng, retry_after_cap=60, remaining=None)
    assert d.retry and 0.25 <= (d.delay or 0) <= 0.5
    assert (
        decide(POLICY, upstream(503), 6, rng, retry_after_cap=60, remaining=None).why
        == "retries_exhausted"
    )
    assert (
        decide(POLICY, upstream(400), 1, rng, retry_after_cap=60, remaining=None).why
        == "not_retryable"
    )
    quota = upstream(429, code="insufficient_quota")
    assert decide(POLICY, quota, 1, rng, retry_after_cap=60, remaining=None).why == (
        "not_retryable"
    )
    none = RetryPolicy()
    assert decide(none, upstream(503), 1, rng, retry_after_cap=60, remaining=None).why is None


def test_decide_honours_retry_after_up_to_the_cap() -> None:
    rng = random.Random(2)
    d = decide(
        POLICY, upstream(429, {"retry-after": "2"}), 1, rng, retry_after_cap=60, remaining=None
    )
    assert d.delay == 2.0
    d = decide(
        POLICY, upstream(429, {"retry-after-ms": "150"}), 1, rng, retry_after_cap=60, remaining=None
    )
    assert d.delay == pytest.approx(0.15)
    d = decide(
        POLICY, upstream(429, {"retry-after": "61"}), 1, rng, retry_after_cap=60, remaining=None
    )
    assert not d.retry and d.why == "retry_after_too_long"
    ignore = RetryPolicy(attempts=2, use_retry_after=False, base_delay=0.1)
    d = decide(
        ignore, upstream(429, {"retry-after": "61"}), 1, rng, retry_after_cap=60, remaining=None
    )
    assert d.retry and (d.delay or 0) <= 0.1


def test_decide_stops_when_the_wait_would_cross_the_deadline() -> None:
    rng = random.Random(3)
    d = decide(POLICY, upstream(500), 3, rng, retry_after_cap=60, remaining=0.9)
    assert not d.retry and d.why == "deadline"  # the 3rd backoff is at least 1.0s
    d = decide(POLICY, upstream(500), 1, rng, retry_after_cap=60, remaining=0.9)
    assert d.retry


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"retry-after": " 1.5 "}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds({}) is None
    import time

    later = retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 28 <= later <= 31


def test_error_classes() -> None:
    assert classes_of(UpstreamTimeout("t")) == {"timeout", "5xx"}
    assert classes_of(UpstreamUnreachable("u")) == {"connection", "5xx"}
    assert classes_of(upstream(429)) == {"rate_limit", "4xx"}
    assert classes_of(upstream(408)) == {"timeout", "4xx"}
    assert classes_of(upstream(503)) == {"5xx"}
    assert classes_of(upstream(404)) == {"4xx"}
    assert classes_of(CapabilityMissing("claude", "embeddings")) == {"unsupported", "4xx"}
    assert not parse_error_list(["unsupported"]).matches(upstream(400))
    matcher = parse_error_list(["rate_limit", 503, "504"])
    assert matcher.matches(upstream(429)) and matcher.matches(upstream(503))
    assert matcher.matches(UpstreamTimeout("t"))  # our timeout is a 504
    assert not matcher.matches(upstream(500)) and not matcher.matches(upstream(400))
    assert parse_error_list(["*"]).matches(upstream(418))
