"""The Redis backend: one set of limits and budgets shared by every gateway instance.

Each admission and each settlement is one EVALSHA of a script registered once
(:mod:`.redis_scripts`), with short socket timeouts so a slow Redis cannot stall
requests. When Redis fails, the backend opens a breaker for ``redis_retry_interval``
seconds and answers by the configured fail mode, without waiting on Redis again:

* ``open`` (default): calls pass uncounted; their settlements are queued in memory and
  replayed when Redis answers again, so spend made during the outage is not lost.
* ``closed``: calls are refused with 503 until Redis answers.

After the interval one call probes Redis; the first success closes the breaker. Both
transitions are logged at ERROR / WARNING level.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from llmrelay.errors import ServiceUnavailable
from llmrelay.governance.backend import Admission, Outcome, Plan, SpendLoader
from llmrelay.governance.budgets import Budget, BudgetState
from llmrelay.governance.limits import WindowState
from llmrelay.governance.redis_scripts import ADMIT, SETTLE

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("llmrelay.governance")

#: Settlements kept while Redis is down (oldest dropped beyond this, with a log line).
_MAX_PENDING = 100_000
#: Consecutive timeouts that open the breaker (a refused connection opens it at once).
_TRIP_AFTER = 3
#: Spend counters outlive their period by this long (late settlements still land).
_SPEND_GRACE_MS = 2 * 86_400_000


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
                url, max_connections=max_connections, timeout=max(1.0, 8 * timeout),
                socket_timeout=timeout, socket_connect_timeout=max(0.5, 2 * timeout),
                retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
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
        self._down_until = 0.0
        self._failures = 0
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._pending: deque[tuple[list[str], list[str | int]]] = deque()
        self._dropped = 0

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
        args: list[str | int] = [plan.ticket, len(plan.limits), len(plan.budgets),
                                 self._res_ttl_ms]
        for limit in plan.limits:
            args += [limit.limit, int(limit.window * 1000), plan.amount(limit), limit.kind]
        for budget in plan.budgets:
            args += [budget.limit_nanos, plan.cost]
        try:
            for _ in range(3):
                reply = await self._admit_script(keys=keys, args=args)
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
        await self._recovered()
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
        return Admission(windows, budgets, rejected=plan.limits[index],
                         retry_after=max(0.0, retry_ms / 1000))

    async def _seed(self, budgets: list[Budget]) -> None:
        """Start absent spend counters from the database's persisted spend."""
        for budget in budgets:
            spent = await self._load_spend(budget)
            expires = int(budget.ends.timestamp() * 1000) + _SPEND_GRACE_MS
            await self._redis.set(self.spend_key(budget), spent, nx=True, pxat=expires)

    # -- settlement -----------------------------------------------------------------
    async def settle(self, plan: Plan, outcome: Outcome) -> None:
        keys = self._keys(plan)
        args: list[str | int] = [plan.ticket, len(plan.limits), len(plan.budgets)]
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
            await self._settle_script(keys=keys, args=args)
        except Exception as exc:
            if not _is_outage(exc):
                raise
            self._failed(exc)
            self._queue(keys, args)
            return
        await self._recovered()

    def _queue(self, keys: list[str], args: list[str | int]) -> None:
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
            log.warning("Redis at %s timed out (%s); this call %s", _safe_url(self.url),
                        self.last_error, "is served uncounted" if self.fail_mode == "open"
                        else "is refused with 503")
            return
        self._down_until = time.monotonic() + self._retry_interval
        if self.down_since is None:
            self.down_since = time.time()
            effect = ("limits and budgets are NOT enforced (fail-open)" if self.fail_mode == "open"
                      else "model calls are refused with 503 (fail-closed)")
            log.error("Redis at %s is unreachable (%s): %s until it answers again",
                      _safe_url(self.url), self.last_error, effect)

    async def _recovered(self) -> None:
        self._failures = 0
        if self.down_since is None and not self._pending:
            return
        was_down = self.down_since
        outage = time.time() - (was_down or time.time())
        self.down_since = None
        self._down_until = 0.0
        replayed = 0
        while self._pending:
            keys, args = self._pending[0]
            try:
                await self._settle_script(keys=keys, args=args)
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                self._failed(exc)
                return
            self._pending.popleft()
            replayed += 1
        if was_down is not None:
            log.warning("Redis at %s answers again after %.1fs; replayed %d settlements%s",
                        _safe_url(self.url), outage, replayed,
                        f" ({self._dropped} dropped)" if self._dropped else "")
        self._dropped = 0

    def _unavailable(self) -> Admission:
        if self.fail_mode == "closed":
            raise ServiceUnavailable(
                "rate limits and budgets cannot be checked: the shared counter store "
                "(Redis) is unreachable; retry shortly"
            )
        return Admission(unchecked=True)

    async def close(self) -> None:
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
        return text.startswith(("OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN",
                                "CLUSTERDOWN", "NOREPLICAS"))
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

