"""The ``cache`` plug-in's factory and what every ``cache`` plug-in of a gateway shares.

:class:`CacheRuntime` is built once at start: the backend (memory or Redis), the
semantic index and its sharing (pgvector, Redis pub/sub), the embedders, the single
flight table, prices and counters. Its :meth:`~CacheRuntime.plugin` is the factory
registered as ``cache``: one :class:`~llmrelay.cache.response_cache.ResponseCache` (the
plug-in's steps: hits, collection, storing) per distinct options.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmrelay.cache import entry as entries
from llmrelay.cache.backends import Backend, BackendError, MemoryBackend, RedisBackend
from llmrelay.cache.embedder import EmbeddingError, ProviderEmbedder
from llmrelay.cache.local_embedder import LOCAL_MODEL, LocalEmbedder
from llmrelay.cache.options import CacheOptionsError, parse_cache_options
from llmrelay.cache.response_cache import CONVERTIBLE, ResponseCache
from llmrelay.cache.semantic import SemanticIndex
from llmrelay.cache.shared_vectors import SharedVectors
from llmrelay.cache.vector_channel import VectorChannel
from llmrelay.errors import InvalidRequest
from llmrelay.governance.pricing import cost_nanos
from llmrelay.plugins.chain import Plugin
from llmrelay.providers.base import Usage

if TYPE_CHECKING:
    from llmrelay.config import Settings
    from llmrelay.context import Call
    from llmrelay.governance.governor import Governor
    from llmrelay.routing.resolve import Resolver
    from llmrelay.store.database import Database
    from llmrelay.telemetry.metrics import Metrics

log = logging.getLogger("llmrelay.cache")


class CacheRuntime:
    """What every ``cache`` plug-in of a gateway shares: the backend, prices, counters."""

    def __init__(
        self,
        settings: Settings,
        governor: Governor,
        metrics: Metrics,
        resolver: Resolver,
        engine: Database | None = None,
    ) -> None:
        cfg = settings.response_cache
        self.governor = governor
        self.metrics = metrics
        self.resolver = resolver
        self.max_entry_bytes = cfg.max_entry_bytes
        self.embedding_model = cfg.embedding_model
        self.add_metadata = cfg.metadata
        self.embedding_timeout = cfg.embedding_timeout
        self.index = SemanticIndex(cfg.max_vectors, cfg.max_vectors_per_context)
        #: One embedder per model named by a config (the options are bounded already).
        self._embedders: dict[str, ProviderEmbedder | LocalEmbedder] = {}
        #: Single flight: the keys a miss of this process is answering now.
        self.flights: dict[str, asyncio.Event] = {}
        self.shared: SharedVectors | None = None
        if cfg.shared_vectors and engine is not None:
            self.shared = SharedVectors(
                engine,
                self.index,
                cfg.vector_sync_interval,
                settings.database_timeout,
                lambda: metrics.cache_errors.labels("database").inc(),
            )
        url = cfg.redis_url or settings.redis_url
        #: Shared questions pushed through Redis as they are stored (the poll catches up).
        self.channel: VectorChannel | None = None
        if self.shared is not None and url:
            self.channel = VectorChannel(
                url,
                settings.redis_prefix + "cache:vectors",
                self.index,
                settings.redis_timeout,
                settings.redis_retry_interval,
                lambda: metrics.cache_errors.labels("redis").inc(),
            )
        self.backend: Backend
        if cfg.backend == "redis" or (cfg.backend == "auto" and url):
            assert url is not None  # checked with the settings
            self.backend = RedisBackend(
                url,
                settings.redis_prefix + "cache:simple:",
                settings.redis_timeout,
                settings.redis_retry_interval,
            )
        else:
            self.backend = MemoryBackend(cfg.max_bytes)

    def start(self) -> None:
        if self.shared is not None:
            self.shared.start()
        if self.channel is not None:
            self.channel.start()

    def plugin(self, options: Mapping[str, Any]) -> Plugin:
        """The factory registered as ``cache`` (one plug-in per distinct options)."""
        try:
            parsed = parse_cache_options(options)
        except CacheOptionsError as exc:
            raise InvalidRequest(
                f"invalid cache options: {exc}", param=exc.path, code="invalid_cache_options"
            ) from None
        if parsed.mode == "semantic" and not (parsed.embedding_model or self.embedding_model):
            # Seed 004's configs say only {"mode": "semantic"}: they must keep working.
            log.warning(
                "response cache: semantic mode without an embeddings model (set "
                "response_cache.embedding_model or cache.embedding_model); those "
                "calls are matched exactly"
            )
        return ResponseCache(self, parsed)

    async def embed(self, model: str, text: str) -> list[float] | None:
        """The question's unit vector, or ``None`` when the model failed (counted)."""
        embedder = self._embedders.get(model)
        if embedder is None:
            embedder = self._embedders[model] = self._embedder(model)
        before = embedder.tokens
        try:
            vector = await embedder.embed(text)
        except EmbeddingError as exc:
            self.metrics.cache_errors.labels("embedding").inc()
            log.warning("response cache: %s; the call is looked up exactly", exc)
            return None
        self.metrics.cache_embedding_tokens.inc(embedder.tokens - before)
        return vector

    def _embedder(self, model: str) -> ProviderEmbedder | LocalEmbedder:
        """``local/all-MiniLM-L6-v2`` runs in this process; any other name is a model of
        the gateway's providers."""
        if model == LOCAL_MODEL:
            return LocalEmbedder(model, self.embedding_timeout)
        return ProviderEmbedder(self.resolver, model, self.embedding_timeout)

    def _failed(self, exc: BackendError) -> None:
        self.metrics.cache_errors.labels(self.backend.name).inc()
        log.debug("response cache backend failed: %s", exc)

    async def lookup(self, key: str, stream: bool, route: str) -> entries.Entry | None:
        """The entry that can answer a call of this form, or ``None`` (a failure too):
        an internal one, a pass-through one of the same form, or a pass-through JSON
        answer for a stream (one round trip for all three)."""
        try:
            found = await self.backend.get(
                [key, entries.form_key(key, stream), entries.form_key(key, not stream)]
            )
        except BackendError as exc:
            self._failed(exc)
            return None
        for raw in found:
            entry = entries.decode(raw) if raw is not None else None
            if entry is None:
                continue
            if (
                not entry.passthrough
                or entry.stream == stream
                or (stream and not entry.stream and route in CONVERTIBLE)
            ):
                return entry
        return None

    async def store(self, key: str, entry: entries.Entry, ttl: float) -> bool:
        """Whether the entry was stored (not too big, the backend answered)."""
        raw = entries.encode(entry)
        if len(raw) > self.max_entry_bytes:
            return False
        try:
            await self.backend.set(key, raw, ttl)
        except BackendError as exc:
            self._failed(exc)
            return False
        return True

    def cost(self, call: Call, usage: Usage | None = None) -> int:
        """What the call's answer cost (nano-dollars): what a hit on it will save."""
        usage = usage or call.usage
        if usage is None or call.target is None:
            return 0
        price = self.governor.price_of(call.target)
        return cost_nanos(usage, price) if price is not None else 0

    def status(self) -> dict[str, Any]:
        semantic: dict[str, Any] = dict(self.index.status())
        if self.shared is not None:
            semantic["pgvector"] = self.shared.presence
        if self.channel is not None:
            semantic["pushed_received"] = self.channel.received
            semantic["pushed_subscribed"] = self.channel.subscribed.is_set()
        return {**self.backend.status(), "semantic": semantic}

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.shared is not None:
            await self.shared.close()
        await self.backend.close()
