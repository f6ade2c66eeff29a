"""What the cache did for one call (``call.cache``): reported in headers, rows, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from llmrelay.providers.base import ChatResult

#: ``x-llmrelay-cache`` values: answered from the cache, looked up and not found, not
#: looked up nor stored (bypass header), not looked up but stored (refresh).
HIT, MISS, BYPASS, REFRESH = "HIT", "MISS", "BYPASS", "REFRESH"
#: Answered from the cache by a similar question (semantic mode).
SEMANTIC = "SEMANTIC"


@dataclass(slots=True, eq=False)
class CacheState:
    result: str = BYPASS
    key: str | None = None
    #: The answer may be stored (no ``no-store``, not a hit, not bypassed).
    store: bool = False
    ttl: float = 0.0
    #: A hit: seconds since the entry was stored, and what the call would have cost.
    age: float | None = None
    saved_nanos: int = 0
    #: A non-streamed answer waiting to be stored once the call ends well.
    answer: ChatResult | None = None
    #: A streamed answer's events (``None`` once it outgrew the entry size limit).
    events: list[bytes] | None = None
    events_bytes: int = 0
    #: The stream reached its end (not cut by the upstream, a plug-in or the client).
    ended: bool = False
    #: Semantic mode: the question's context hash and embedding, indexed once stored.
    context: str | None = None
    vector: list[float] | None = None
    similarity: float | None = None
    #: Single flight: set once this call (the first miss of its key) has stored.
    flight: asyncio.Event | None = None

    @property
    def hit(self) -> bool:
        return self.result in (HIT, SEMANTIC)
