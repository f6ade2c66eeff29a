"""Circuit breakers: in process with a fake clock, and shared through a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from llmrelay.routing.breaker import BreakerPolicy, LocalBreaker
from llmrelay.routing.breaker_redis import RedisBreaker
from tests.private_services import PrivateRedis

POLICY = BreakerPolicy(failure_threshold=3, window=10.0, cooldown=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_failures_in_window_then_probes_and_closes() -> None:
    clock = Clock()
    b = LocalBreaker(POLICY, clock=clock)
    for _ in range(2):
        b.failure_now("p/m")
    assert b.acquire_now("p/m").allowed
    b.failure_now("p/m")
    verdict = b.acquire_now("p/m")
    assert not verdict.allowed and verdict.state == "open" and verdict.retry_in == 5.0
    clock.now += 5.0
    probe = b.acquire_now("p/m")
    assert probe.allowed and probe.state == "half_open"
    other = b.acquire_now("p/m")  # only one probe at a time
    assert not other.allowed and other.state == "half_open"
    b.success_now("p/m")
    assert b.acquire_now("p/m").state == "closed"
    assert b.acquire_now("other/m").state == "closed"


def _cooled_down() -> tuple[Clock, LocalBreaker]:
    """A breaker opened by three failures of ``k``, its cooldown just over."""
    clock = Clock()
    b = LocalBreaker(POLICY, clock=clock)
    for _ in range(3):
        b.failure_now("k")
    clock.now += 5.0
    return clock, b


def test_failed_probe_reopens_for_another_cooldown() -> None:
    _, b = _cooled_down()
    assert b.acquire_now("k").allowed
    b.failure_now("k")
    verdict = b.acquire_now("k")
    assert verdict.state == "open" and verdict.retry_in == 5.0
    snap = asyncio.run(b.snapshot())
    assert snap["k"]["state"] == "open" and snap["k"]["times_opened"] == 2


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    b = LocalBreaker(POLICY, clock=clock)
    b.failure_now("k")
    b.failure_now("k")
    clock.now += 11.0
    b.failure_now("k")
    assert b.acquire_now("k").allowed
    assert asyncio.run(b.snapshot())["k"]["recent_failures"] == 1


def test_unreported_probe_is_released_after_a_cooldown() -> None:
    clock, b = _cooled_down()
    assert b.acquire_now("k").allowed
    clock.now += 5.0  # the probe's caller vanished without reporting
    assert b.acquire_now("k").allowed


@pytest.mark.redis
def test_redis_breaker_shares_state_between_instances(redis_server: None) -> None:
    async def scenario() -> None:
        prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
        fast = BreakerPolicy(failure_threshold=2, window=10.0, cooldown=0.3)
        one = RedisBreaker("redis://127.0.0.1:6379/0", fast, prefix)
        two = RedisBreaker("redis://127.0.0.1:6379/0", fast, prefix)
        try:
            await one.failure("p/m")
            assert (await two.acquire("p/m")).allowed
            await two.failure("p/m")
            verdict = await one.acquire("p/m")
            assert not verdict.allowed and verdict.state == "open"
            assert 0 < verdict.retry_in <= 0.3
            snap = await two.snapshot()
            assert snap["p/m"]["state"] == "open" and snap["p/m"]["times_opened"] == 1
            await asyncio.sleep(0.35)
            probe = await two.acquire("p/m")
            assert probe.allowed and probe.state == "half_open"
            assert not (await one.acquire("p/m")).allowed  # the probe is taken
            await two.success("p/m")
            assert (await one.acquire("p/m")).state == "closed"
            assert (await one.snapshot())["p/m"]["state"] == "closed"
        finally:
            client = one._client
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_redis_breaker_falls_back_to_local_state_when_redis_is_down() -> None:
    async def scenario() -> None:
        from tests.gateway_proc import free_port

        down = RedisBreaker(
            f"redis://127.0.0.1:{free_port()}/0",
            BreakerPolicy(failure_threshold=1, window=10, cooldown=30),
            "x:",
            timeout=0.1,
        )
        try:
            assert (await down.acquire("k")).allowed
            await down.failure("k")  # counted in process
            assert not (await down.acquire("k")).allowed
            snap = await down.snapshot()
            assert snap["k"]["state"] == "open" and "_shared" in snap
        finally:
            await down.close()

    asyncio.run(scenario())


async def test_redis_breaker_uses_shared_state_at_once_after_redis_returns(
    private_redis: PrivateRedis,
) -> None:
    """Redis killed and restarted under an instance with 20 pooled connections -> its
    first calls afterwards read the shared state instead of failing on a stale
    connection and falling back to in-process state for another second."""
    policy = BreakerPolicy(failure_threshold=1, window=10, cooldown=30)
    one = RedisBreaker(private_redis.url, policy, "b:", retry_interval=0.3)
    try:
        await asyncio.gather(*(one.acquire("p/m") for _ in range(20)))
        private_redis.stop()
        assert (await one.acquire("p/m")).allowed  # in-process state: closed
        private_redis.start()
        await asyncio.sleep(0.4)  # past retry_interval: the next call tries Redis again
        two = RedisBreaker(private_redis.url, policy, "b:")
        try:
            await two.failure("p/m")  # opens the circuit in Redis, for every instance
        finally:
            await two.close()
        for _ in range(5):
            verdicts = await asyncio.gather(*(one.acquire("p/m") for _ in range(10)))
            assert all(not v.allowed and v.state == "open" for v in verdicts)
    finally:
        await one.close()
