"""The Redis backend: one set of limits and budgets shared by every gateway instance.

Each admission and each settlement is one EVALSHA of a script registered once
(:mod:`.redis_scripts`), with short socket timeouts so a slow Redis cannot stall
requests. When Redis fails, the backend opens a breaker for ``redis_retry_interval``
seconds and answers by the configured fail mode, without waiting on Redis again:

* ``open`` (default): calls pass uncounted; their settlements are queued in memory and
  replayed when Redis answers again, so spend made during the outage is not lost.
* ``closed``: calls are refused with 503 until Redis answers.

After the interval one call probes Redis, on fresh connections (the pooled ones predate
the outage, :mod:`llmrelay.redis_pool`); the first success closes the breaker. Both
transitions are logged at ERROR / WARNING level.

Replay is exactly once: one task drains the queue (an entry leaves the queue before it
is sent and goes back to its front if Redis fails again), and every settlement carries
its ticket, which SETTLE records for two minutes and refuses to apply twice, so a
settlement that timed out but did reach Redis is not counted again by its replay.
When Redis lost its data (restarted empty), counters are rebuilt from the database
without counting a call twice or not at all: the replay starts ``settle_lag`` after the
recovery (the usage rows of the outage's last calls reach the database meanwhile),
adds nothing to counters that are gone, and seeding waits for it, so the seed reads a
database that holds the replayed calls; a live settlement, whose row is queued only
after it, seeds a missing counter and then adds its cost. (Before: the seed came first
and the replay counted the outage's spend a second time, and concurrent replays raced:
``IndexError`` 500s, one settlement applied twice while another was dropped.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.backend import Admission, Outcome, Plan, SpendLoader
from llmrelay.governance.budgets import Budget, BudgetState
from llmrelay.governance.limits import WindowState
from llmrelay.governance.redis_scripts import ADMIT, EXTEND, SETTLE
from llmrelay.redis_pool import StalePool

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("llmrelay.governance")

#: Settlements kept while Redis is down (oldest dropped beyond this, with a log line).
_MAX_PENDING = 100_000
#: Consecutive timeouts that open the breaker (a refused connection opens it at once).
_TRIP_AFTER = 3
#: Spend counters outlive their period by this long (late settlements still land).
_SPEND_GRACE_MS = 2 * 86_400_000
#: How long SETTLE remembers a ticket it applied. A copy of a settlement arriving later
#: than this (a command stuck in a partition's TCP retransmissions for longer than the
#: kernel's 2-minute maximum back-off) would be applied again.
_SETTLED_TTL_MS = 120_000
#: Settlements sent per pipelined round trip while replaying.
_REPLAY_BATCH = 200


class RedisBackend:
    name = "redis"

    def __init__(
        self,
        url: str,
        load_spend: SpendLoader,
        *,
        prefix: str = "{llmrelay}:",
        fail_mode: str = "open",
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        reservation_ttl: float = 900.0,
        max_connections: int = 64,
        settle_lag: float = 0.0,
        client: Redis | None = None,
    ) -> None:
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # A bounded pool that makes a burst queue for a connection: a plain pool
            # raises "Too many connections", which would look like an outage. No
            # client-side retries: they would multiply the timeout on every call, and
            # the breaker below is the retry policy.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=max(1.0, 8 * timeout),
                socket_timeout=timeout,
                socket_connect_timeout=max(0.5, 2 * timeout),
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
            )
            client = Redis(connection_pool=pool)
        self.url = url
        self._redis = client
        self._load_spend = load_spend
        self._prefix = prefix
        self.fail_mode = fail_mode
        self._retry_interval = retry_interval
        self._res_ttl_ms = int(reservation_ttl * 1000)
        self._admit_script = client.register_script(ADMIT)
        self._settle_script = client.register_script(SETTLE)
        self._extend_script = client.register_script(EXTEND)
        self._pool = StalePool(client)
        self._down_until = 0.0
        self._failures = 0
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._pending: deque[tuple[list[str], list[str | int]]] = deque()
        self._dropped = 0
        self._replay: asyncio.Task[None] | None = None
        #: How far the database may lag a settlement (the log writer's flush interval).
        self._settle_lag = settle_lag

    # -- keys -----------------------------------------------------------------------
    def _keys(self, plan: Plan) -> list[str]:
        p = self._prefix
        keys: list[str] = []
        for limit in plan.limits:
            keys += [f"{p}w:{limit.id}", f"{p}w:{limit.id}:sum"]
        for budget in plan.budgets:
            keys += [f"{p}spend:{budget.id}", f"{p}res:{budget.id}", f"{p}res:{budget.id}:sum"]
        return keys

    def spend_key(self, budget: Budget) -> str:
        return f"{self._prefix}spend:{budget.id}"

    # -- admission ------------------------------------------------------------------
    async def admit(self, plan: Plan) -> Admission:
        if not self._available():
            return self._unavailable()
        keys = self._keys(plan)
        args: list[str | int] = [plan.ticket, len(plan.limits), len(plan.budgets), self._res_ttl_ms]
        for limit in plan.limits:
            args += [limit.limit, int(limit.window * 1000), plan.amount(limit), limit.kind]
        for budget in plan.budgets:
            args += [budget.limit_nanos, plan.cost]
        try:
            if self._pool.stale:
                await self._pool.renew()
            for attempt in range(3):
                reply = await self._admit_script(keys=keys, args=args)
                if attempt == 0:
                    self._answered()
                if int(reply[0]) != -1:
                    break
                await self._seed([plan.budgets[int(i)] for i in reply[1:]])
            else:  # pragma: no cover - only if the counters vanish between two calls
                raise RuntimeError("budget counters could not be seeded")
        except Exception as exc:
            if not _is_outage(exc):
                raise
            self._failed(exc)
            return self._unavailable()
        return self._admission(plan, [int(x) for x in reply])

    def _admission(self, plan: Plan, reply: list[int]) -> Admission:
        status, index, retry_ms = reply[0], reply[1], reply[2]
        pos = 3
        windows = []
        for limit in plan.limits:
            windows.append(WindowState(limit, reply[pos], reply[pos + 1] / 1000))
            pos += 2
        budgets = []
        for budget in plan.budgets:
            budgets.append(BudgetState(budget, reply[pos], reply[pos + 1]))
            pos += 2
        if status == 1:
            return Admission(windows, budgets)
        if index >= len(plan.limits):
            return Admission(windows, budgets, rejected=plan.budgets[index - len(plan.limits)])
        return Admission(
            windows, budgets, rejected=plan.limits[index], retry_after=max(0.0, retry_ms / 1000)
        )

    async def _seed(self, budgets: list[Budget]) -> None:
        """Start absent spend counters from the database's persisted spend.

        Waits for a running replay first: replayed settlements must meet the counters
        that were there (or none), never one just seeded from a database that already
        holds their spend.
        """
        replay = self._replay
        if replay is not None and not replay.done():
            await asyncio.shield(replay)
        for budget in budgets:
            spent = await self._load_spend(budget)
            expires = int(budget.ends.timestamp() * 1000) + _SPEND_GRACE_MS
            await self._redis.set(self.spend_key(budget), spent, nx=True, pxat=expires)

    # -- settlement -----------------------------------------------------------------
    async def settle(self, plan: Plan, outcome: Outcome) -> None:
        keys = self._keys(plan)
        keys.append(f"{self._prefix}settled:{plan.ticket}")
        args: list[str | int] = [
            plan.ticket,
            len(plan.limits),
            len(plan.budgets),
            _SETTLED_TTL_MS,
            1,
        ]
        for limit in plan.limits:
            reserved = plan.amount(limit)
            if limit.kind == "tokens":
                real = outcome.tokens if outcome.reached else 0
            else:
                real = reserved if outcome.reached else 0
            args += [reserved, real]
        for _budget in plan.budgets:
            args += [plan.cost, outcome.cost]
        if not self._available():
            self._queue(keys, args)
            return
        try:
            if self._pool.stale:
                await self._pool.renew()
            for attempt in range(3):
                reply = await self._settle_script(keys=keys, args=args)
                if attempt == 0:
                    self._answered()
                if not isinstance(reply, list):
                    break
                try:
                    await self._seed([plan.budgets[int(i)] for i in reply[1:]])
                except ServiceUnavailable:
                    # The database cannot seed the counter now: the call's row will hold
                    # its cost, so it is replayed like one made while Redis was away.
                    self._queue(keys, args)
                    return
        except Exception as exc:
            if not _is_outage(exc):
                raise
            self._failed(exc)
            self._queue(keys, args)
            return

    async def extend(self, plan: Plan, cost: int) -> Budget | None:
        """Raise the call's budget reservation to ``cost`` if every budget has room left.

        Granted by the admission rule (``spent + reserved`` below the limit); returns the
        budget without room otherwise. While Redis is unreachable the fail mode answers:
        ``open`` grants, ``closed`` raises 503.
        """
        if not self._available():
            self._unavailable()  # raises in fail-closed mode; fail-open grants
            return None
        p = self._prefix
        keys: list[str] = []
        args: list[str | int] = [plan.ticket, len(plan.budgets), self._res_ttl_ms]
        for budget in plan.budgets:
            keys += [f"{p}spend:{budget.id}", f"{p}res:{budget.id}", f"{p}res:{budget.id}:sum"]
            args += [budget.limit_nanos, plan.cost, cost]
        try:
            if self._pool.stale:
                await self._pool.renew()
            refused = int(await self._extend_script(keys=keys, args=args))
        except Exception as exc:
            if not _is_outage(exc):
                raise
            self._failed(exc)
            self._unavailable()
            return None
        self._answered()
        if refused >= 0:
            return plan.budgets[refused]
        plan.cost = cost
        return None

    def _queue(self, keys: list[str], args: list[str | int]) -> None:
        args[4] = 0  # replayed: the call's usage row is on its way to the database
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
            self._dropped += 1
        self._pending.append((keys, args))

    # -- breaker --------------------------------------------------------------------
    def _available(self) -> bool:
        now = time.monotonic()
        if now < self._down_until:
            return False
        if self.down_since is not None:
            # Half-open: this call probes; the others keep the fail mode meanwhile.
            self._down_until = now + self._retry_interval
        return True

    def _failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._failures += 1
        if self.down_since is None and _is_timeout(exc) and self._failures < _TRIP_AFTER:
            # One slow answer (a burst, a busy host) fails only this call; a refused
            # connection, or several timeouts in a row, open the breaker.
            log.warning(
                "Redis at %s timed out (%s); this call %s",
                _safe_url(self.url),
                self.last_error,
                "is served uncounted" if self.fail_mode == "open" else "is refused with 503",
            )
            return
        self._down_until = time.monotonic() + self._retry_interval
        self._pool.outage()
        if self.down_since is None:
            self.down_since = time.time()
            effect = (
                "limits and budgets are NOT enforced (fail-open)"
                if self.fail_mode == "open"
                else "model calls are refused with 503 (fail-closed)"
            )
            log.error(
                "Redis at %s is unreachable (%s): %s until it answers again",
                _safe_url(self.url),
                self.last_error,
                effect,
            )

    def _answered(self) -> None:
        """Redis answered a command: close the breaker, replay what waits (one task)."""
        self._failures = 0
        if self.down_since is not None:
            outage = time.time() - self.down_since
            self.down_since = None
            self._down_until = 0.0
            log.warning(
                "Redis at %s answers again after %.1fs; replaying %d settlements",
                _safe_url(self.url),
                outage,
                len(self._pending),
            )
            if self._pending and (self._replay is None or self._replay.done()):
                self._replay = asyncio.create_task(
                    self._drain(self._settle_lag), name="llmrelay-redis-replay"
                )
        if self._pending and (self._replay is None or self._replay.done()):
            self._replay = asyncio.create_task(self._drain(), name="llmrelay-redis-replay")

    async def _drain(self, lag: float = 0.0) -> None:
        """Apply the queued settlements, oldest first, each exactly once.

        After an outage it first waits ``lag``: if Redis lost its counters, they are
        seeded from the database once this replay is done, and the usage rows of the
        last calls before the recovery must have reached it by then.
        """
        if lag > 0:
            await asyncio.sleep(lag)
        replayed = 0
        while self._pending and self.down_since is None:
            batch = [self._pending.popleft() for _ in range(min(_REPLAY_BATCH, len(self._pending)))]
            pipe = self._redis.pipeline(transaction=False)
            for keys, args in batch:
                await self._settle_script(keys=keys, args=args, client=pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                if _is_outage(exc):
                    # Back to the front, in order: SETTLE's ticket marker makes re-sending
                    # the ones Redis did apply harmless.
                    self._pending.extendleft(reversed(batch))
                    self._failed(exc)
                    return
                # Not an outage (a bug): retrying would fail the same way on every call.
                self._dropped += len(batch)
                log.exception(
                    "replaying %d settlements failed; they are dropped (their "
                    "usage rows and persisted spend are in the database)",
                    len(batch),
                )
                continue
            retry: list[tuple[list[str], list[str | int]]] = []
            for entry, result in zip(batch, results, strict=True):
                if not isinstance(result, Exception):
                    replayed += 1
                elif _is_outage(result):  # OOM, LOADING, ...: Redis is not ready yet
                    retry.append(entry)
                else:
                    self._dropped += 1
                    log.error("a replayed settlement was refused by Redis (%s); dropped", result)
            if retry:
                self._pending.extendleft(reversed(retry))
                self._failed(next(r for r in results if isinstance(r, Exception) and _is_outage(r)))
                return
        if not self._pending:
            log.warning(
                "Redis at %s: replayed %d settlements%s",
                _safe_url(self.url),
                replayed,
                f" ({self._dropped} dropped)" if self._dropped else "",
            )
            self._dropped = 0

    def _unavailable(self) -> Admission:
        if self.fail_mode == "closed":
            raise ServiceUnavailable(
                "rate limits and budgets cannot be checked: the shared counter store "
                "(Redis) is unreachable; retry shortly"
            )
        return Admission(unchecked=True)

    async def close(self) -> None:
        replay = self._replay
        if replay is not None and not replay.done():
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replay
        if self._pending:
            log.warning(
                "%d settlements were never replayed into Redis (their usage rows "
                "are in the database)",
                len(self._pending),
            )
        await self._redis.aclose()

    def status(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "ok": self.down_since is None,
            "fail_mode": self.fail_mode,
            "down_since": self.down_since,
            "last_error": self.last_error,
            "pending_settlements": len(self._pending),
        }


def _is_timeout(exc: BaseException) -> bool:
    from redis.exceptions import TimeoutError

    return isinstance(exc, TimeoutError | asyncio.TimeoutError)


def _is_outage(exc: BaseException) -> bool:
    """Errors that mean "Redis cannot answer now" (not bugs in our scripts)."""
    from redis.exceptions import ConnectionError, ResponseError, TimeoutError

    if isinstance(exc, ConnectionError | TimeoutError | OSError | asyncio.TimeoutError):
        return True
    if isinstance(exc, ResponseError):
        text = str(exc)
        return text.startswith(
            ("OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS")
        )
    return False


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
