"""The Redis backend against a real Redis: same semantics as in process, atomic under
concurrency, and the fail-open / fail-closed breaker with recovery."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.backend import Outcome, Plan
from llmrelay.governance.budgets import Budget, month_period
from llmrelay.governance.limits import MINUTE, Limit
from llmrelay.governance.redis_backend import RedisBackend
from tests.gateway_proc import free_port
from tests.private_services import PrivateRedis
from tests.services import REDIS_HOST, REDIS_PORT, in_ci

pytestmark = pytest.mark.redis
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def limit(kind: str, n: int, scope_id: str = "k1") -> Limit:
    return Limit("key", scope_id, kind, n, MINUTE, f"key '{scope_id}'")  # type: ignore[arg-type]


def budget(nanos: int) -> Budget:
    period, ends = month_period(datetime.now(UTC))
    return Budget("key", "k1", "monthly", period, ends, nanos, "key 'k1'")


def plan(*limits: Limit, budgets: tuple[Budget, ...] = (), tokens: int = 1, cost: int = 0) -> Plan:
    return Plan(uuid.uuid4().hex, list(limits), list(budgets), tokens=tokens, cost=cost)


class Spend:
    def __init__(self, value: int = 0) -> None:
        self.value = value
        self.loads = 0

    async def __call__(self, _: Budget) -> int:
        self.loads += 1
        return self.value


@pytest.fixture
async def redis(redis_server: None) -> AsyncIterator[tuple[RedisBackend, Spend]]:
    spend = Spend()
    # A prefix of its own: other tests (and other gateways) share this Redis. A timeout
    # well above the 0.25 s default: 50 concurrent admissions open 50 connections, and a
    # slow connect on a busy machine would fail open and admit them all (what these
    # tests check is exactness, not the timeout: the outage tests below do that).
    backend = RedisBackend(REDIS_URL, spend, prefix=f"{{test-{uuid.uuid4().hex}}}:", timeout=2.0)
    yield backend, spend
    await backend._redis.delete(*await backend._redis.keys(backend._prefix + "*") or ["-"])
    await backend.close()


async def test_concurrent_admissions_pass_exactly_the_limit(
    redis: tuple[RedisBackend, Spend],
) -> None:
    backend, _ = redis
    results = await asyncio.gather(
        *(backend.admit(plan(limit("requests", 37))) for _ in range(120))
    )
    assert sum(r.admitted for r in results) == 37
    refused = next(r for r in results if not r.admitted)
    assert 59 < refused.retry_after <= 60
    assert refused.windows[0].used == 37


async def test_refusal_records_nothing_and_release_gives_slots_back(
    redis: tuple[RedisBackend, Spend],
) -> None:
    backend, _ = redis
    key, team = limit("requests", 5), Limit("team", "t1", "requests", 1, MINUTE, "team 't1'")
    first = plan(key, team)
    assert (await backend.admit(first)).admitted
    assert (await backend.admit(plan(key, team))).rejected == team
    assert (await backend.admit(plan(key))).windows[0].used == 1
    await backend.settle(first, Outcome(tokens=0, cost=0, reached=False))
    assert (await backend.admit(plan(key, team))).admitted


async def test_tokens_are_reserved_then_corrected(redis: tuple[RedisBackend, Spend]) -> None:
    backend, _ = redis
    tpm = limit("tokens", 1000)
    big = plan(tpm, tokens=10**12)  # far beyond what Lua prints as an integer by default
    assert (await backend.admit(big)).admitted
    assert not (await backend.admit(plan(tpm, tokens=1))).admitted
    await backend.settle(big, Outcome(tokens=123, cost=0, reached=True))
    assert (await backend.admit(plan(tpm, tokens=5))).windows[0].used == 123


async def test_budget_is_seeded_once_and_holds_under_concurrency(
    redis: tuple[RedisBackend, Spend],
) -> None:
    backend, spend = redis
    spend.value = 990_000_000
    cap = budget(1_000_000_000)
    cost = 3_000_000
    plans = [plan(budgets=(cap,), cost=cost) for _ in range(50)]
    admissions = await asyncio.gather(*(backend.admit(p) for p in plans))
    admitted = [p for p, a in zip(plans, admissions, strict=True) if a.admitted]
    assert len(admitted) == 4
    await asyncio.gather(*(backend.settle(p, Outcome(10, cost, True)) for p in admitted))
    state = (await backend.admit(plan(budgets=(cap,), cost=cost))).budgets[0]
    assert state.spent == 990_000_000 + 4 * cost and state.reserved == 0
    assert spend.loads >= 1
    assert int(await backend._redis.get(backend.spend_key(cap))) == state.spent


async def test_expired_reservations_stop_holding_budget(redis_server: None) -> None:
    backend = RedisBackend(
        REDIS_URL, Spend(), prefix=f"{{test-{uuid.uuid4().hex}}}:", reservation_ttl=0.05
    )
    try:
        cap = budget(100)
        assert (await backend.admit(plan(budgets=(cap,), cost=100))).admitted
        assert not (await backend.admit(plan(budgets=(cap,), cost=1))).admitted
        await asyncio.sleep(0.1)  # the first call's instance "crashed" before settling
        assert (await backend.admit(plan(budgets=(cap,), cost=1))).admitted
    finally:
        await backend.close()


@pytest.fixture
def spare_redis_port() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("redis-server is not installed (CI=true: refusing to skip)", pytrace=False)
        pytest.skip("redis-server is not installed")
    procs: list[subprocess.Popen[bytes]] = []
    yield free_port(), procs
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def start_redis(port: int, procs: list[subprocess.Popen[bytes]]) -> None:
    procs.append(
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )


async def test_fail_open_counts_spend_made_during_the_outage_when_redis_returns(
    spare_redis_port: tuple[int, list[subprocess.Popen[bytes]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that comes back empty starts from the database, which already holds the
    outage's spend: the replay must not add it a second time."""
    port, procs = spare_redis_port
    spend = Spend(7_000)  # the usage row of the call made during the outage
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", spend, retry_interval=0.1)
    try:
        cap = budget(10**9)
        during = plan(limit("requests", 1), budgets=(cap,), cost=5)
        admission = await backend.admit(during)
        assert admission.admitted and admission.unchecked  # fail-open: served uncounted
        assert "unreachable" in caplog.text and "NOT enforced" in caplog.text
        await backend.settle(during, Outcome(tokens=10, cost=7_000, reached=True))
        assert backend.status()["pending_settlements"] == 1
        start_redis(port, procs)
        for _ in range(100):
            await asyncio.sleep(0.1)
            first = await backend.admit(plan(limit("requests", 1), budgets=(cap,)))
            if not first.unchecked:
                break
        assert first.admitted and not first.unchecked
        assert backend.status()["ok"] is True
        assert "answers again" in caplog.text
        # Seeded from the database after the replay found no counter: counted once.
        assert int(await backend._redis.get(backend.spend_key(cap))) == 7_000
        assert backend.status()["pending_settlements"] == 0
        assert not (await backend.admit(plan(limit("requests", 1)))).admitted
    finally:
        await backend.close()


async def test_fail_closed_refuses_with_503(spare_redis_port: tuple[int, list[object]]) -> None:
    port, _ = spare_redis_port
    # A "Redis" that hangs up on every connection, counting them: the breaker's answer
    # is checked by the connections it did not open, not by timing it.
    connections: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", port)
    backend = RedisBackend(
        f"redis://127.0.0.1:{port}/0",
        Spend(),
        fail_mode="closed",
        retry_interval=30,
        # A generous timeout: on a busy machine the 0.25 s default can expire before
        # the hang-up is seen, and one timeout alone does not open the breaker.
        timeout=5,
    )
    try:
        with pytest.raises(ServiceUnavailable, match="Redis"):
            await backend.admit(plan(limit("requests", 1)))
        tried = len(connections)
        assert tried >= 1
        with pytest.raises(ServiceUnavailable):  # the breaker answers without trying Redis
            await backend.admit(plan(limit("requests", 1)))
        assert len(connections) == tried
    finally:
        await backend.close()
        server.close()
        await server.wait_closed()


async def test_retry_after_walks_token_entries_past_one_page(
    redis: tuple[RedisBackend, Spend],
) -> None:
    backend, _ = redis
    for _ in range(150):
        assert (await backend.admit(plan(limit("tokens", 1000), tokens=1))).admitted
    await asyncio.sleep(0.02)
    # The key's limit was lowered to 20: 131 of the 150 entries must leave first.
    refused = await backend.admit(plan(limit("tokens", 20), tokens=1))
    assert refused.windows[0].used == 150
    assert 59.5 < refused.retry_after < 60


async def test_concurrent_recovery_replays_each_settlement_exactly_once(
    private_redis: PrivateRedis,
) -> None:
    """Redis frozen (SIGSTOP) while calls settle, then resumed under 30 concurrent
    callers -> no exception, every settlement applied exactly once, also the ones that
    timed out but reached Redis."""
    backend = RedisBackend(private_redis.url, Spend(1_000), timeout=0.2, retry_interval=0.2)
    try:
        cap = budget(10**15)
        assert (await backend.admit(plan(budgets=(cap,), cost=1))).admitted  # seeded: 1000
        outage = [plan(budgets=(cap,), cost=1) for _ in range(400)]
        private_redis.pause()
        # The first ones time out inside Redis's socket buffer (applied on resume), the
        # breaker opens, the rest are queued without being sent.
        for i, p in enumerate(outage):
            await backend.settle(p, Outcome(tokens=1, cost=i + 1, reached=True))
        assert backend.status()["ok"] is False
        assert backend.status()["pending_settlements"] == len(outage)
        loop = asyncio.get_running_loop()
        calls = 0
        resumed = asyncio.Event()

        async def caller() -> None:
            # What the governor does: admit, then settle, also when served unchecked.
            nonlocal calls
            stop_at = None
            while stop_at is None or loop.time() < stop_at:
                if stop_at is None and resumed.is_set():
                    stop_at = loop.time() + 2.0
                p = plan(budgets=(cap,), cost=1)
                await backend.admit(p)
                await backend.settle(p, Outcome(1, 10**6, True))
                calls += 1
                await asyncio.sleep(0.002)

        callers = [asyncio.create_task(caller()) for _ in range(30)]
        await asyncio.sleep(0.3)
        private_redis.resume()
        resumed.set()
        await asyncio.gather(*callers)  # an IndexError from a racing replay surfaces here
        assert backend.status()["ok"] is True
        deadline = loop.time() + 30
        while backend.status()["pending_settlements"] and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert backend.status()["pending_settlements"] == 0
        expected = 1_000 + sum(range(1, len(outage) + 1)) + calls * 10**6
        assert int(await backend._redis.get(backend.spend_key(cap))) == expected
        state = (await backend.admit(plan(budgets=(cap,), cost=0))).budgets[0]
        assert state.reserved == 1  # only the very first call's reservation is still held
    finally:
        await backend.close()


async def test_pooled_connections_from_before_an_outage_do_not_reopen_the_breaker(
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed and restarted with 30 idle pooled connections -> after the probe,
    every call is counted again (the stale connections are dropped, not tried)."""
    backend = RedisBackend(private_redis.url, Spend(), retry_interval=0.2)
    try:
        many = limit("requests", 10**6)
        await asyncio.gather(*(backend.admit(plan(many)) for _ in range(30)))
        private_redis.stop()
        assert (await backend.admit(plan(many))).unchecked
        private_redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (await backend.admit(plan(many))).unchecked:
            assert loop.time() < deadline, "Redis never counted as back"
            await asyncio.sleep(0.05)
        for _ in range(10):
            burst = await asyncio.gather(*(backend.admit(plan(many)) for _ in range(10)))
            assert not any(a.unchecked for a in burst)
            await asyncio.sleep(0.03)
        assert caplog.text.count("is unreachable") == 1
    finally:
        await backend.close()


async def test_extend_raises_a_reservation_only_while_the_budget_has_room(
    redis: tuple[RedisBackend, Spend],
) -> None:
    backend, _ = redis
    cap = budget(1_000)
    running = plan(budgets=(cap,), cost=300)
    assert (await backend.admit(running)).admitted
    assert await backend.extend(running, 600) is None
    assert running.cost == 600
    other = plan(budgets=(cap,), cost=300)
    assert (await backend.admit(other)).budgets[0].reserved == 600
    # spent 0 + reserved 900 < 1000: still room, so one more raise passes ...
    assert await backend.extend(running, 900) is None
    # ... and then 0 + 1200 >= 1000: refused, the reservation stays where it was.
    assert await backend.extend(running, 1_200) == cap
    assert running.cost == 900
    await backend.settle(running, Outcome(10, 950, True))
    await backend.settle(other, Outcome(10, 0, True))
    state = (await backend.admit(plan(budgets=(cap,), cost=0))).budgets[0]
    assert (state.spent, state.reserved) == (950, 0)
