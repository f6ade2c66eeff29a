"""Shared semantic questions pushed through Redis pub/sub: on the others' index at once.

With ``response_cache.shared_vectors`` and a Redis URL, each question an instance stores
is also published on ``<redis_prefix>cache:vectors`` (the prefix scopes it like every
other key), and every instance subscribed there adds it to its own index as it arrives:
a question stored through one instance is a semantic hit on the others within a
millisecond or so instead of one ``vector_sync_interval``. Pub/sub delivers at most
once and only to connected subscribers, so the database poll (``shared_vectors.py``)
stays: it catches up whatever a disconnected or restarted instance missed. A message
read again by the poll replaces the same entry key in the index: harmless.

Failures follow the cache's rule: a publish that fails is logged (at most every 30 s)
and counted as ``backend="redis"``, and the call is unaffected; the subscriber
reconnects after ``retry_interval`` and the poll covers the gap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from llmrelay.cache.semantic import SemanticIndex
from llmrelay.cache.shared_vectors import pack, unpack

log = logging.getLogger("llmrelay.cache")

_WARN_EVERY = 30.0


class VectorChannel:
    """Publishes this instance's stored questions; adds the others' to ``index``."""

    def __init__(
        self,
        url: str,
        channel: str,
        index: SemanticIndex,
        timeout: float,
        retry_interval: float,
        failed: Callable[[], None],
    ) -> None:
        from redis.asyncio import Redis  # imported only when Redis is configured

        self.channel = channel
        self.index = index
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.failed = failed
        #: Tells this instance's own messages apart (it indexed them when storing).
        self.origin = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._publisher: Any = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        # The subscriber waits for messages: no read timeout, a ping keeps it honest.
        self._subscriber: Any = Redis.from_url(
            url, socket_connect_timeout=timeout, health_check_interval=30
        )
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0
        #: Messages from other instances added to the index (for /health/ready, tests).
        self.received = 0
        self.subscribed = asyncio.Event()

    def _warn(self, what: str, exc: BaseException) -> None:
        self.failed()
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            log.warning("response cache: %s (%s)", what, type(exc).__name__)

    async def publish(self, context: str, vector: list[float], key: str, ttl: float) -> None:
        message = orjson.dumps(
            {
                "o": self.origin,
                "c": context,
                "k": key,
                "v": base64.b64encode(pack(vector)).decode(),
                "e": time.time() + ttl,
            }
        )
        try:
            async with asyncio.timeout(self.timeout):
                await self._publisher.publish(self.channel, message)
        except Exception as exc:
            self._warn("could not publish a question vector", exc)

    def receive(self, data: bytes) -> bool:
        """Add one message's question to the index; ``False`` for this instance's own
        or a malformed message (ignored: the poll still brings the row)."""
        try:
            message = orjson.loads(data)
            if message["o"] == self.origin:
                return False
            vector = unpack(base64.b64decode(message["v"]))
            ttl = float(message["e"]) - time.time()
            context, key = str(message["c"]), str(message["k"])
        except (ValueError, KeyError, TypeError) as exc:
            self._warn("ignored a malformed question-vector message", exc)
            return False
        if ttl > 0 and vector:
            self.index.add(context, vector, key, ttl)
            self.received += 1
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self.receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                self._warn("the question-vector subscription failed; retrying", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.retry_interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in (self._publisher, self._subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()
