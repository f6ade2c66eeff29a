"""Where cache entries live: this process's memory, or Redis shared by every instance.

Both are byte stores keyed by string with a TTL per entry. A backend that fails raises
:class:`BackendError`; the plug-in turns that into a miss (logged, counted), never a
failed call.

* :class:`MemoryBackend`: an LRU bounded in bytes (keys + values), TTL checked on read
  and expired entries dropped as the LRU end is reached. One process only.
* :class:`RedisBackend`: ``GET``/``MGET`` and ``SET ... PX``; every command has the
  ``timeout`` (socket and overall). After a failure Redis is left alone for
  ``retry_interval`` seconds, so an outage costs each call nothing instead of a
  timeout, and the first call after it drops the pool's stale connections
  (:mod:`llmrelay.redis_pool`); it recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from llmrelay.redis_pool import StalePool

log = logging.getLogger("llmrelay.cache")


class BackendError(Exception):
    """The store could not be read or written (down, slow, refused)."""


class Backend(Protocol):
    name: str

    async def get(self, keys: list[str]) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """An in-process LRU of at most ``max_bytes`` (keys and values counted)."""

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.evicted = 0

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self.bytes -= len(key) + len(value)

    async def get(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        out: list[bytes | None] = []
        for key in keys:
            item = self._items.get(key)
            if item is None:
                out.append(None)
            elif item[0] <= now:
                self._drop(key)
                out.append(None)
            else:
                self._items.move_to_end(key)
                out.append(item[1])
        return out

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        size = len(key) + len(value)
        if size > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        while self.bytes + size > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evicted += 1
        self._items[key] = (time.monotonic() + ttl, value)
        self.bytes += size

    async def delete(self, key: str) -> None:
        if key in self._items:
            self._drop(key)

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "entries": len(self._items),
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "evicted": self.evicted,
        }

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0


class RedisBackend:
    """Entries in Redis under ``prefix`` (shared by every gateway instance)."""

    name = "redis"

    def __init__(self, url: str, prefix: str, timeout: float, retry_interval: float) -> None:
        from redis.asyncio import Redis  # imported only when a Redis cache is configured

        self._client: Any = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._pool = StalePool(self._client)
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._last_warning = 0.0
        self.failures = 0

    def _check(self) -> None:
        if time.monotonic() < self._down_until:
            raise BackendError("redis is down (retrying shortly)")

    def _failed(self, exc: BaseException) -> BackendError:
        self.failures += 1
        now = time.monotonic()
        self._down_until = now + self.retry_interval
        self._pool.outage()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning(
                "response cache: redis unavailable (%s: %s); calls are served as "
                "misses until it answers again",
                type(exc).__name__,
                exc,
            )
        return BackendError(f"redis: {type(exc).__name__}")

    async def _run(self, command: Any) -> Any:
        self._check()
        try:
            if self._pool.stale:
                await self._pool.renew()
            async with asyncio.timeout(self.timeout):  # no task per command, unlike wait_for
                return await command()
        except Exception as exc:  # refused, reset, timed out, read-only replica ...
            raise self._failed(exc) from exc

    async def get(self, keys: list[str]) -> list[bytes | None]:
        names = [self.prefix + k for k in keys]
        if len(names) == 1:
            return [await self._run(lambda: self._client.get(names[0]))]
        return list(await self._run(lambda: self._client.mget(names)))

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self._run(lambda: self._client.set(self.prefix + key, value, px=ms))

    async def delete(self, key: str) -> None:
        await self._run(lambda: self._client.delete(self.prefix + key))

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "available": time.monotonic() >= self._down_until,
            "failures": self.failures,
        }

    async def close(self) -> None:
        await self._client.aclose()
