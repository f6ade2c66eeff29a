"""Circuit state shared through Redis, so every gateway instance skips a failing target.

Each transition is one Lua script (atomic, registered once and called by SHA), timed
by the Redis server's clock so instances with skewed clocks agree. Keys, per target::

    <prefix>state:<target>   hash: open_until (ms), opened (count)
    <prefix>fails:<target>   sorted set of failure times inside the window
    <prefix>probe:<target>   the half-open probe token (SET NX PX)
    <prefix>known            set of targets, for /health/ready

A slow or unreachable Redis must not stall requests: every call has a short timeout,
and after a failure Redis is left alone for ``retry_interval`` seconds while the
in-process breaker takes over (logged at most every 30 s). The next call drops the
pool's idle connections first (:mod:`llmrelay.redis_pool`): they predate the outage,
and the first command on one would fail and hand another second to the local state.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from llmrelay.redis_pool import StalePool
from llmrelay.routing.breaker import BreakerPolicy, LocalBreaker, Verdict

log = logging.getLogger("llmrelay.breaker")

_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

ACQUIRE = (
    _NOW
    + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return {1, 'closed', 0} end
if now < open_until then return {0, 'open', open_until - now} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {1, 'half_open', 0} end
return {0, 'half_open', redis.call('PTTL', KEYS[2])}
"""
)

FAILURE = (
    _NOW
    + """
redis.call('SADD', KEYS[4], ARGV[4])
local window, threshold, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 then
  if now >= open_until then
    redis.call('HSET', KEYS[1], 'open_until', now + cooldown, 'changed_at', now)
    redis.call('HINCRBY', KEYS[1], 'opened', 1)
    redis.call('DEL', KEYS[3])
  end
  return 'open'
end
redis.call('ZADD', KEYS[2], now, now .. '-' .. ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], window)
if redis.call('ZCARD', KEYS[2]) >= threshold then
  redis.call('HSET', KEYS[1], 'open_until', now + cooldown, 'changed_at', now)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  redis.call('DEL', KEYS[2], KEYS[3])
  return 'opened'
end
return 'closed'
"""
)

SUCCESS = (
    _NOW
    + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 and now >= open_until then
  redis.call('HSET', KEYS[1], 'open_until', 0, 'changed_at', now)
  redis.call('DEL', KEYS[2], KEYS[3])
  return 'closed'
end
return 'unchanged'
"""
)

SNAPSHOT = (
    _NOW
    + """
local out = {}
local window = tonumber(ARGV[1])
for _, target in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local state = ARGV[2] .. 'state:' .. target
  local open_until = tonumber(redis.call('HGET', state, 'open_until') or '0')
  local fails = redis.call('ZCOUNT', ARGV[2] .. 'fails:' .. target, now - window, '+inf')
  local opened = tonumber(redis.call('HGET', state, 'opened') or '0')
  local changed = tonumber(redis.call('HGET', state, 'changed_at') or '0')
  table.insert(out, {target, open_until - now, open_until, fails, opened, changed})
end
return out
"""
)


class RedisBreaker:
    """The :class:`~llmrelay.routing.breaker.Breaker` interface over Redis."""

    def __init__(
        self,
        url: str,
        policy: BreakerPolicy,
        prefix: str,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
    ) -> None:
        from redis.asyncio import Redis

        self.policy = policy
        self._prefix = prefix
        self._client: Any = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self._acquire = self._client.register_script(ACQUIRE)
        self._failure = self._client.register_script(FAILURE)
        self._success = self._client.register_script(SUCCESS)
        self._snapshot = self._client.register_script(SNAPSHOT)
        self._pool = StalePool(self._client)
        self._local = LocalBreaker(policy)
        self._last_warning = 0.0
        self._retry_interval = retry_interval
        self._down_until = 0.0
        self._ms = (
            int(policy.window * 1000),
            policy.failure_threshold,
            int(policy.cooldown * 1000),
        )

    def _keys(self, key: str) -> tuple[str, str, str]:
        p = self._prefix
        return f"{p}state:{key}", f"{p}fails:{key}", f"{p}probe:{key}"

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _degraded(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_interval
        self._pool.outage()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning(
                "circuit breaker: Redis unavailable (%s: %s); using in-process state",
                type(exc).__name__,
                exc,
            )

    async def acquire(self, key: str) -> Verdict:
        state, _, probe = self._keys(key)
        if self._down():
            return self._local.acquire_now(key)
        try:
            if self._pool.stale:
                await self._pool.renew()
            allowed, name, wait_ms = await self._acquire(keys=[state, probe], args=[self._ms[2]])
        except Exception as exc:  # redis errors, timeouts, refused connections
            self._degraded(exc)
            return self._local.acquire_now(key)
        return Verdict(bool(allowed), str(name), max(0, int(wait_ms)) / 1000)

    async def failure(self, key: str) -> None:
        state, fails, probe = self._keys(key)
        if self._down():
            self._local.failure_now(key)
            return
        try:
            if self._pool.stale:
                await self._pool.renew()
            await self._failure(
                keys=[state, fails, probe, f"{self._prefix}known"],
                args=[*self._ms, key, uuid.uuid4().hex[:12]],
            )
        except Exception as exc:
            self._degraded(exc)
            self._local.failure_now(key)

    async def success(self, key: str) -> None:
        state, fails, probe = self._keys(key)
        if self._down():
            self._local.success_now(key)
            return
        try:
            if self._pool.stale:
                await self._pool.renew()
            await self._success(keys=[state, fails, probe])
        except Exception as exc:
            self._degraded(exc)
            self._local.success_now(key)

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        if self._down():
            return {**(await self._local.snapshot()), "_shared": {"state": "redis unavailable"}}
        try:
            if self._pool.stale:
                await self._pool.renew()
            rows = await self._snapshot(
                keys=[f"{self._prefix}known"], args=[self._ms[0], self._prefix]
            )
        except Exception as exc:
            self._degraded(exc)
            return {**(await self._local.snapshot()), "_shared": {"state": "redis unavailable"}}
        out: dict[str, dict[str, Any]] = {}
        for target, left_ms, open_until, fails, opened, changed in rows:
            left = int(left_ms)
            if not int(open_until):
                state, retry_in = "closed", 0.0
            elif left > 0:
                state, retry_in = "open", left / 1000
            else:
                state, retry_in = "half_open", 0.0
            out[str(target)] = {
                "state": state,
                "recent_failures": int(fails),
                "retry_in": round(retry_in, 3),
                "times_opened": int(opened),
                "changed_at": int(changed) / 1000 if int(changed) else None,
            }
        return out

    async def close(self) -> None:
        await self._client.aclose()
