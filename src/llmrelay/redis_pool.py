"""Pooled Redis connections after an outage: dropped, not trusted.

When Redis goes away (restarted, failed over, a partition), the connections idle in a
client's pool still look open until a command is written to them, and the first
command on each answers ``Connection closed by server``. Measured before this guard:
with Redis back, the governance backend and the shared circuit breaker each hit such a
connection and declared Redis down again for another ``redis_retry_interval`` (1 s).
So whoever noticed the outage marks the pool, and the first user after it closes every
idle connection once; they reconnect lazily on their next use. In-use connections are
left alone: a command on a dead one fails and redis-py drops that connection itself.
"""

from __future__ import annotations

import asyncio
from typing import Any


class StalePool:
    """Marks a client's pool stale on an outage; :meth:`renew` closes its idle connections.

    Callers check :attr:`stale` (an attribute read on the hot path) and await
    :meth:`renew` only when it is set.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.stale = False
        self._lock = asyncio.Lock()

    def outage(self) -> None:
        """Redis stopped answering: the idle connections predate what comes next."""
        self.stale = True

    async def renew(self) -> None:
        """Close the idle connections once (concurrent callers wait for the first)."""
        async with self._lock:
            if self.stale:
                await self._client.connection_pool.disconnect(inuse_connections=False)
                self.stale = False
