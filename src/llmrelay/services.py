"""The running gateway's services, built once at start-up.

Every request handler receives one :class:`Services`: settings, storage, the provider
registry, resolver, router, governor, key store, log writer, metrics, the plug-in
selector, and the set of calls in flight that a drain waits for. It is a leaf of the
import graph: it imports the building blocks and nothing that serves HTTP (``app``,
``pipeline``, ``api``), so handlers depend on it and never on the application module,
and several gateways with different settings can run side by side in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from llmrelay.cache.plugin import CacheRuntime
from llmrelay.changes import ChangeFeed
from llmrelay.config import ProviderConfig, Settings
from llmrelay.governance.governor import Governor
from llmrelay.governance.keys import KeyCachePolicy, KeyStore
from llmrelay.governance.startup import GovernanceRuntime
from llmrelay.governance.usage import write_usage
from llmrelay.guardrails.config import parse_guardrails
from llmrelay.guardrails.moderation import Moderation
from llmrelay.guardrails.ner import NameModel
from llmrelay.plugins.chain import PluginSelector
from llmrelay.plugins.registry import plugin_selector
from llmrelay.providers.mock import MockTransport
from llmrelay.providers.model_lists import ModelLists
from llmrelay.providers.registry import Registry, build_registry
from llmrelay.providers.reload import ProviderReloader
from llmrelay.providers.stored import sync_providers
from llmrelay.routing import aliases as alias_table
from llmrelay.routing.bound import BoundProviders
from llmrelay.routing.resolve import Resolver
from llmrelay.routing.router import Router, build_router
from llmrelay.store import database
from llmrelay.store.credentials import CredentialBox, local_secret
from llmrelay.store.deadline import within
from llmrelay.store.spool import spool_dir
from llmrelay.store.tables import models
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.metrics import Metrics
from llmrelay.upstream import HttpTransport

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from llmrelay.context import Call
    from llmrelay.telemetry.tracing import Tracing

log = logging.getLogger("llmrelay")


class Services:
    """What a request needs, built by :meth:`start` and torn down by :meth:`close`."""

    # Built by ``start`` (declared here so handlers are type-checked against them).
    engine: database.Database
    credentials: CredentialBox
    http: HttpTransport
    mock: MockTransport
    registry: Registry
    provider_reloader: ProviderReloader
    resolver: Resolver
    keys: KeyStore
    router: Router
    bound: BoundProviders
    writer: LogWriter
    governance: GovernanceRuntime
    governor: Governor
    metrics: Metrics
    model_lists: ModelLists
    plugins: PluginSelector
    cache: CacheRuntime
    changes: ChangeFeed

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.started_at = int(time.time())
        self.draining = False
        self.streams: set[Call] = set()
        #: Every model call that may be talking to an upstream (what a drain interrupts).
        self.calls: set[Call] = set()
        #: The drain deadline has passed: a call still reaching its upstream stage (it
        #: was being admitted at the deadline) is refused there instead of starting.
        self.calls_ended = False
        self._drain_task: asyncio.Task[None] | None = None
        self._previous_sigterm: Any = None
        self._previous_sigint: Any = None
        self._log_stream: IO[bytes] | None = None
        #: OpenTelemetry (telemetry/tracing.py), imported only when ``tracing`` is on.
        self.tracing: Tracing | None = None
        self._shared_live: asyncio.Task[None] | None = None

    # -- start and stop -----------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.engine = database.create_engine(s.database_url)
        await database.migrate(self.engine)
        self.credentials = CredentialBox(self._secret())
        extra = await self._sync_providers()
        aliases = dict(await self._db_aliases())
        aliases.update(s.aliases)
        self.http = HttpTransport(max_body_bytes=s.max_upstream_body_bytes)
        self.mock = MockTransport()
        self.registry = build_registry(s, self.env, self.http, self.mock, extra)
        routes = {m.name: (m.provider, m.model) for m in s.models}
        self.resolver = Resolver(self.registry, routes, aliases)
        self.keys = KeyStore(self.engine.connect, KeyCachePolicy.from_settings(s))
        if s.keys_file:
            await self._import_keys_file(s.keys_file)
        self.router = build_router(s, self.registry, self.resolver, self.engine.connect)
        self.bound = BoundProviders(self.registry, self.credentials, self.router.redactor)
        await self.router.start()
        self._log_stream = _open_log_stream(s.log_file) if s.log_interactions else None
        self.writer = LogWriter(
            self.engine,
            queue_size=s.log_queue_size,
            batch_size=s.log_batch_size,
            flush_interval=s.log_flush_interval,
            log_stream=self._log_stream,
            store_bodies=s.log_bodies,
            spool_dir=spool_dir(s.log_spool_dir, s.database_url),
            spool_interval=s.log_spool_interval,
            db_timeout=s.log_db_timeout,
            spool_max_bytes=s.log_spool_max_bytes,
        )
        self.governance = await GovernanceRuntime.start(s, self.engine)
        self.governor = self.governance.governor
        self.writer.sinks.append(write_usage)  # usage rows + summaries with each log batch
        self.metrics = Metrics(self._live_metrics, key_labels=s.metrics_key_labels)
        if s.metrics_key_labels:
            self.governor.budget_observer = self.metrics.observe_budgets
        shared = self.metrics.shared_live
        self._shared_live = None if shared is None else asyncio.create_task(shared.run())
        if s.tracing:
            from llmrelay.telemetry.tracing import start_tracing

            self.tracing = start_tracing(record_content=s.tracing_record_content)
        self.writer.observers.append(self.metrics.observe)
        self.writer.start()  # replays rows a previous process left in the spool
        self.metrics.watch_writer(self.writer.stats_dict)
        self.metrics.watch_keys(self.keys.counters)
        self.cache = CacheRuntime(s, self.governor, self.metrics, self.resolver, self.engine)
        self.cache.start()
        self.ner = NameModel()  # loads nothing until a names: ner guardrail needs it
        self.plugins = plugin_selector(
            s.plugins,
            self.governor,
            {"cache": self.cache.plugin},
            Moderation(self.registry, self.http),
            self.metrics.count_guardrail,
            self.ner,
        )
        if "guardrails" in s.plugins and parse_guardrails(s.plugins["guardrails"]).uses_ner:
            # Every call runs these: pay the model's load (seconds) before serving.
            await self.ner.warm()
        self.model_lists = ModelLists(self.registry, s.provider_reload_interval)
        self.model_lists.start()
        self.changes = ChangeFeed(
            self.engine.connect,
            interval=s.provider_reload_interval,
            timeout=s.database_timeout,
            redis_url=s.redis_url,
            prefix=s.redis_prefix,
            redis_timeout=max(s.redis_timeout, 1.0),
        )
        self.provider_reloader = ProviderReloader(self)
        self.changes.on("route_configs", self.router.selector.configs.refresh)
        self.changes.on("aliases", self._reload_aliases)
        self.changes.on("providers", self._reload_providers)
        self.changes.on("models", self.governance.reload_prices)
        if s.route_by_catalog:
            await self._reload_catalog_routes()
            self.changes.on("models", self._reload_catalog_routes)
        await self.changes.start()
        self._hook_sigterm()

    @cached_property
    def sessions(self) -> async_sessionmaker[Any]:
        """ORM sessions over the same engine and pool, for the admin plane and a
        ``keys_file`` import: made on first use, so a gateway that serves no admin call
        never imports the ORM (the start and the request path use Core)."""
        sessions: async_sessionmaker[Any] = database.sessionmaker(self.engine)
        return sessions

    async def close(self) -> None:
        s = self.settings
        self.draining = True
        # Calls a drain did not end (no signal hook, a second signal) end here, and their
        # rows are queued before the writer's last flush.
        await self.end_calls()
        await self.writer.close()
        if self._shared_live is not None and self.metrics.shared_live is not None:
            self._shared_live.cancel()
            self.metrics.shared_live.close()
        if self.tracing is not None:  # flushes the last spans to the collector
            await asyncio.to_thread(self.tracing.close)
        await self.governance.close()
        await self.cache.close()
        self.ner.close()
        await self.model_lists.close()
        await self.changes.close()
        await self.http.close()
        await self.router.close()
        # A hung database must not hang the exit: its pooled connections are just dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.engine.dispose(), s.log_db_timeout)
        if self._log_stream is not None and self._log_stream not in (
            sys.stdout.buffer,
            sys.stderr.buffer,
        ):
            self._log_stream.close()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def _live_metrics(self) -> tuple[int, int, dict[str, bool]]:
        return (
            len(self.streams),
            self.writer.pending,
            {p.name: p.state.status != "error" for p in self.registry},
        )

    def begin_drain(self, then: Callable[[], None] | None = None) -> None:
        """SIGTERM: refuse new calls now; interrupt those still running at the deadline.

        The listener stays open while calls run, so a client connecting during the drain
        gets the documented 503 (in its endpoint's shape, ``connection: close``) rather
        than a refused connection. ``then`` (the server's own signal handler: stop
        listening, close connections, lifespan shutdown) runs once the last call has
        ended, at ``drain_timeout`` at the latest; a second signal ends the calls at once.
        Every call still running at the deadline is interrupted *before* the server
        stops, so none is left for uvicorn to cancel into its plain-text 500.
        """
        # Called from a signal handler: only hand work to the loop, thread-safely.
        if self.draining:
            self._loop.call_soon_threadsafe(self._start_drain, then, 0.0)
            return
        self.draining = True
        self._loop.call_soon_threadsafe(self._start_drain, then, self.settings.drain_timeout)

    def _start_drain(self, then: Callable[[], None] | None, timeout: float) -> None:
        log.info("draining: %d calls in flight, deadline %.1fs", len(self.calls), timeout)
        if self._drain_task is not None:
            self._drain_task.cancel()
        self._drain_task = self._loop.create_task(self._drain(then, timeout))

    async def _drain(self, then: Callable[[], None] | None, timeout: float) -> None:
        deadline = self._loop.time() + timeout
        while self.calls and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.calls:
            log.warning("drain deadline: ending %d calls still in flight", len(self.calls))
        await self.end_calls()
        if then is not None:
            then()

    async def end_calls(self, grace: float = 3.0) -> None:
        """Interrupt every call still in flight; wait (``grace`` s at most) until each has
        answered its client and queued its row."""
        self.calls_ended = True
        for call in list(self.calls):
            call.interrupt("shutdown")
        end = self._loop.time() + grace
        while self.calls and self._loop.time() < end:
            await asyncio.sleep(0.02)

    def _hook_sigterm(self) -> None:
        """Chain onto the server's SIGTERM/SIGINT handlers so draining starts with the
        signal and the server stops only when the drain is over."""
        if sys.platform == "win32":
            return
        try:
            previous_term = signal.getsignal(signal.SIGTERM)
            previous_int = signal.getsignal(signal.SIGINT)
        except ValueError:
            return
        if not callable(previous_term):
            return
        try:
            signal.signal(signal.SIGTERM, _chain(previous_term, self))
            signal.signal(signal.SIGINT, _chain(previous_int, self))
        except ValueError:  # not the main thread (tests running the app in a thread)
            return
        self._previous_sigterm = previous_term
        self._previous_sigint = previous_int

    async def _import_keys_file(self, path: str) -> None:
        """Import the ``keys_file`` (seed 002); a bad one stops the start, naming the entry."""
        from sqlalchemy.exc import IntegrityError

        from llmrelay.governance import keys_file

        entries = keys_file.parse(Path(path))
        keys_file.check_providers(entries, path, lambda name: name in self.registry)
        try:
            report = await keys_file.import_entries(self.sessions, self.credentials, entries)
        except IntegrityError:  # another worker imported the same file at the same moment
            report = await keys_file.import_entries(self.sessions, self.credentials, entries)
        log.info("keys file %s imported: %s", path, report)

    def _secret(self) -> str:
        return credential_secret(self.settings, self.env)

    async def _sync_providers(self) -> list[ProviderConfig]:
        """Store configured providers (credentials encrypted); return the DB-only ones."""
        return await sync_providers(self.engine, self.credentials, self.settings, self.env)

    async def _reload_aliases(self) -> None:
        """Aliases changed in the database: the stored ones, under the configured ones."""
        await within(self.settings.database_timeout, alias_table.refresh(self))

    async def _reload_catalog_routes(self) -> None:
        """``route_by_catalog``: which provider kind each catalog model name belongs to."""

        async def read() -> dict[str, frozenset[str]]:
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    select(models.c.model_name, models.c.litellm_provider).where(
                        models.c.litellm_provider.is_not(None)
                    )
                )
                kinds: dict[str, set[str]] = {}
                for name, kind in rows:
                    kinds.setdefault(name, set()).add(str(kind))
                return {name: frozenset(k) for name, k in kinds.items()}

        self.resolver.set_catalog(await within(self.settings.database_timeout * 5, read()))

    async def _reload_providers(self) -> None:
        """Providers changed in the database (another instance, the CLI or plain SQL)."""
        await within(self.settings.database_timeout * 2, self.provider_reloader.reload())

    async def _db_aliases(self) -> list[tuple[str, str]]:
        return list((await alias_table.stored_aliases(self.engine.connect)).items())


def _chain(previous: Any, services: Services) -> Any:
    if not callable(previous):
        return previous

    def handler(sig: int, frame: Any) -> None:
        try:
            services.begin_drain(lambda: previous(sig, frame))
        except Exception:  # never lose the server's own handling of the signal
            previous(sig, frame)

    return handler


def _open_log_stream(target: str) -> IO[bytes] | None:
    if target == "none":
        return None
    if target == "stdout":
        return sys.stdout.buffer
    if target == "stderr":
        return sys.stderr.buffer
    return open(target, "ab")


def credential_secret(settings: Settings, env: Mapping[str, str]) -> str:
    """The secret provider credentials are sealed with (see ``store/credentials.py``)."""
    if settings.master_key:
        return settings.master_key
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return local_secret(Path(url.database).with_suffix(".secret"))
    return local_secret(Path(env.get("LLMRELAY_SECRET_FILE", "llmrelay.secret")))
