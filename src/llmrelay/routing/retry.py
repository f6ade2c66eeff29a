"""Retry policy and backoff math: pure functions, so the numbers can be tested alone.

Backoff uses "equal jitter": the n-th retry waits a random time in ``[d/2, d]`` where
``d = min(max_delay, base_delay * 2**(n-1))``. Half the delay is guaranteed (so
retries really do back off), the other half is random (so many clients failing
together do not retry in lock-step). An upstream ``retry-after`` replaces the computed
delay when it is at most the cap; a longer one is not waited for at all: the target
is given up on at once, and a fallback (or the client) decides what happens next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from llmrelay.errors import UpstreamError
from llmrelay.routing.classify import retry_after_seconds

#: Portkey's default retry statuses; our own timeouts are 504, refused connections 502.
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one target is retried before the router gives up on it."""

    #: Retries after the first try (Portkey's meaning of ``attempts``).
    attempts: int = 0
    on_status_codes: frozenset[int] = DEFAULT_RETRY_STATUSES
    exponential_backoff: bool = True
    #: Seconds before the first retry (before jitter).
    base_delay: float = 0.5
    #: Upper bound of one computed delay, in seconds.
    max_delay: float = 8.0
    #: Wait what the upstream's ``retry-after`` asks (up to the cap) instead.
    use_retry_after: bool = True


NO_RETRY = RetryPolicy()


def retryable(policy: RetryPolicy, exc: UpstreamError) -> bool:
    """Whether another try at the same target may succeed.

    The policy's ``on_status_codes`` is the operator's list (it may name statuses the
    error itself would not call retryable); what the error knows cannot be retried (a
    permanent class, an exhausted quota) never is.
    """
    return exc.status in policy.on_status_codes and not exc.permanent and not exc.out_of_quota


def backoff_delay(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1-based), jitter included."""
    if policy.exponential_backoff:
        ceiling = min(policy.max_delay, policy.base_delay * 2 ** (retry - 1))
    else:
        ceiling = min(policy.max_delay, policy.base_delay)
    return ceiling / 2 + rng.random() * ceiling / 2


def backoff_bounds(policy: RetryPolicy, retry: int) -> tuple[float, float]:
    """The range :func:`backoff_delay` draws from (for tests and docs)."""
    if policy.exponential_backoff:
        ceiling = min(policy.max_delay, policy.base_delay * 2 ** (retry - 1))
    else:
        ceiling = min(policy.max_delay, policy.base_delay)
    return ceiling / 2, ceiling


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed try: wait ``delay`` then retry, or stop (``why``)."""

    delay: float | None
    why: str | None = None

    @property
    def retry(self) -> bool:
        return self.delay is not None


def decide(
    policy: RetryPolicy,
    exc: UpstreamError,
    retry: int,
    rng: random.Random,
    *,
    retry_after_cap: float,
    remaining: float | None,
) -> RetryDecision:
    """Whether to retry after failure number ``retry`` (1-based), and after how long.

    ``remaining`` is what is left of the total deadline (``None``: no deadline); a
    retry that could not even start before the deadline is not attempted.
    """
    if retry > policy.attempts:
        return RetryDecision(None, "retries_exhausted" if policy.attempts else None)
    if not retryable(policy, exc):
        return RetryDecision(None, "not_retryable")
    delay = backoff_delay(policy, retry, rng)
    if policy.use_retry_after:
        asked = retry_after_seconds(exc.headers)
        if asked is not None:
            if asked > retry_after_cap:
                return RetryDecision(None, "retry_after_too_long")
            delay = asked
    if remaining is not None and delay >= remaining:
        return RetryDecision(None, "deadline")
    return RetryDecision(delay)
