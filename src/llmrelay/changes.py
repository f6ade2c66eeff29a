"""Run-time changes reach every instance: Redis pub/sub when configured, else polling.

Providers, aliases, model prices and route configs live in the database and are held in
memory by each gateway process (the registry, the resolver, the route-config store).
A change made on one instance through the admin API applies there at once (the writer
calls :meth:`ChangeFeed.notify` after its transaction commits); the others learn of it
in one of two ways:

- **Redis** (``redis_url`` set): ``notify`` publishes ``{"kind", "origin"}`` on the
  channel ``<redis_prefix>changes``; every other instance's listener re-reads that kind
  within about a second. A message lost while an instance was disconnected is caught up
  by a poll right after it reconnects.
- **Polling** (always, every ``provider_reload_interval`` seconds; ``0``: never): a
  fingerprint of each watched table's rows (their contents, since ``model_aliases`` has
  no ``updated_at``) is compared with the last one; a kind whose rows changed is
  re-read. This is how a change made by plain SQL (seed 000's setup script) or by the
  CLI of another host is picked up.

Handlers are registered per kind by whoever holds the in-memory copy (``on``); they
re-read the database themselves, so a message carries no data and a forged or
duplicated one costs one re-read, never a wrong value. Redis or the database being down
is logged and retried: the feed never stops a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from llmrelay.store.deadline import within
from llmrelay.store.tables import model_aliases, models, providers, route_configs

if TYPE_CHECKING:
    from sqlalchemy import Table

    from llmrelay.store.database import Connect

log = logging.getLogger("llmrelay.changes")

Handler = Callable[[], Awaitable[None]]

#: The kinds of change and the table each one's fingerprint is taken of.
WATCHED: dict[str, Table] = {
    "providers": providers,
    "aliases": model_aliases,
    "models": models,
    "route_configs": route_configs,
}
#: Kinds a message may name: the watched ones, and keys (whose cache entries expire
#: within ``key_cache_ttl`` anyway; a message only makes it sooner).
KINDS = frozenset((*WATCHED, "keys", "teams"))
#: Largest message read from the channel (anything longer is not ours).
MAX_MESSAGE = 512


class ChangeFeed:
    """Tells this process's in-memory copies that the database changed."""

    def __init__(
        self,
        connect: Connect,
        *,
        interval: float,
        timeout: float,
        redis_url: str | None = None,
        prefix: str = "",
        redis_timeout: float = 1.0,
    ) -> None:
        self.connect = connect
        self.interval = interval
        self.timeout = timeout
        self.redis_url = redis_url
        self.channel = f"{prefix}changes"
        self.redis_timeout = redis_timeout
        #: Tells this instance's own messages apart from the others'.
        self.origin = os.urandom(8).hex()
        self._handlers: dict[str, list[Handler]] = {}
        self._prints: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._publisher: Any = None
        self.listening = False
        self._subscribed_before = False
        #: Counts for readiness and tests: re-reads per cause, failures per dependency.
        self.stats = {"applied": 0, "published": 0, "received": 0, "polls": 0, "errors": 0}

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` (which re-reads the database) when ``kind`` changes."""
        if kind not in KINDS:
            raise ValueError(f"unknown change kind {kind!r}")
        self._handlers.setdefault(kind, []).append(handler)

    async def start(self) -> None:
        if self.interval > 0:  # no poll, no fingerprints: none is ever compared
            await self._poll(apply=False)  # the starting point; start-up read everything
            self._tasks.append(asyncio.create_task(self._poll_forever(), name="changes-poll"))
        if self.redis_url:
            from redis.asyncio import Redis

            self._publisher = Redis.from_url(
                self.redis_url,
                socket_timeout=self.redis_timeout,
                socket_connect_timeout=self.redis_timeout,
            )
            self._tasks.append(asyncio.create_task(self._listen_forever(), name="changes-sub"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.aclose()
            self._publisher = None

    def status(self) -> dict[str, object]:
        return {
            "redis": bool(self.redis_url),
            "listening": self.listening,
            "poll_interval": self.interval,
            **self.stats,
        }

    async def notify(self, kind: str) -> None:
        """A change of ``kind`` was committed here: apply it, then tell the others."""
        await self.apply(kind)
        if self._publisher is None:
            return
        message = orjson.dumps({"kind": kind, "origin": self.origin})
        try:
            await asyncio.wait_for(self._publisher.publish(self.channel, message), 2.0)
            self.stats["published"] += 1
        except Exception as exc:  # the others catch up at their next poll
            self.stats["errors"] += 1
            log.warning("could not publish a %s change: %s", kind, type(exc).__name__)

    async def apply(self, kind: str) -> None:
        """Run ``kind``'s handlers; one failing is logged and does not stop the rest."""
        self.stats["applied"] += 1
        for handler in self._handlers.get(kind, ()):
            try:
                await handler()
            except Exception:
                self.stats["errors"] += 1
                log.exception("re-reading %s after a change failed", kind)
        if kind in WATCHED and self.interval > 0:  # our own change is no news to the poll
            with contextlib.suppress(Exception):
                self._prints[kind] = await within(self.timeout, self._fingerprint(kind))

    # -- polling ------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._poll(apply=True)

    async def _poll(self, *, apply: bool) -> None:
        self.stats["polls"] += 1
        for kind in WATCHED:
            if not self._handlers.get(kind):  # nobody holds a copy of it
                continue
            try:
                now = await within(self.timeout, self._fingerprint(kind))
            except Exception as exc:
                self.stats["errors"] += 1
                log.warning("change poll of %s failed: %s", kind, type(exc).__name__)
                continue
            before = self._prints.get(kind)
            self._prints[kind] = now
            if apply and before is not None and before != now:
                log.info("%s changed in the database: re-reading", kind)
                await self.apply(kind)

    async def _fingerprint(self, kind: str) -> str:
        table = WATCHED[kind]
        digest = hashlib.blake2b(digest_size=16)
        async with self.connect() as conn:
            result = await conn.execute(select(*table.c).order_by(*table.primary_key))
            for row in result:
                digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()

    # -- pub/sub ------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        from redis.asyncio import Redis

        backoff = 0.5
        while True:
            client = Redis.from_url(
                self.redis_url or "",
                socket_connect_timeout=self.redis_timeout,
                health_check_interval=10,
            )
            try:
                async with client.pubsub() as pubsub:
                    await asyncio.wait_for(pubsub.subscribe(self.channel), 5.0)
                    if self._subscribed_before:
                        await self._poll(apply=True)  # what was missed while away
                    self._subscribed_before = self.listening = True
                    backoff = 0.5
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=5.0
                        )
                        if message is not None:
                            await self._received(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["errors"] += 1
                if self.listening:
                    log.warning("change feed lost Redis (%s); retrying", type(exc).__name__)
                self.listening = False
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _received(self, data: Any) -> None:
        if not isinstance(data, bytes) or len(data) > MAX_MESSAGE:
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        kind, origin = message.get("kind"), message.get("origin")
        if kind not in KINDS or origin == self.origin:
            return
        self.stats["received"] += 1
        await self.apply(str(kind))


async def publish(redis_url: str | None, prefix: str, kind: str, timeout: float = 2.0) -> bool:
    """Tell running gateways that ``kind`` changed (for the CLI, which runs no feed).

    ``False`` when there is no Redis or it did not answer: the gateways then see the
    change at their next poll.
    """
    if not redis_url:
        return False
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        message = orjson.dumps({"kind": kind, "origin": "cli"})
        await asyncio.wait_for(client.publish(f"{prefix}changes", message), timeout)
        return True
    except Exception as exc:
        log.warning("could not publish a %s change: %s", kind, type(exc).__name__)
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
