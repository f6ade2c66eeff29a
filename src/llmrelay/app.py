"""The ASGI application: routes, start-up and graceful shutdown.

Everything a request needs hangs off one :class:`Gateway` built at start (no module
level state), so tests can run several gateways with different settings side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import make_url

from llmrelay.api import ops
from llmrelay.api.anthropic import Messages
from llmrelay.api.count_tokens import ROUTE as COUNT_TOKENS
from llmrelay.api.count_tokens import count_tokens
from llmrelay.api.openai import ChatCompletions, Embeddings, list_models, retrieve_model
from llmrelay.api.responses import Responses
from llmrelay.asgi import Receive, Request, Scope, Send, send_error
from llmrelay.config import ProviderConfig, Settings, load_settings
from llmrelay.context import Call
from llmrelay.errors import GatewayError, MethodNotAllowed, NotFound, ServiceUnavailable
from llmrelay.governance.governor import Governor
from llmrelay.governance.keys import KeyCachePolicy, KeyStore
from llmrelay.governance.startup import GovernanceRuntime
from llmrelay.governance.usage import write_usage
from llmrelay.pipeline import Endpoint, error_body, run
from llmrelay.providers.anthropic_convert import anthropic_error
from llmrelay.providers.mock import MockTransport
from llmrelay.providers.model_lists import ModelLists
from llmrelay.providers.registry import Registry, build_registry
from llmrelay.providers.stored import sync_providers
from llmrelay.routing.resolve import Resolver
from llmrelay.routing.router import Router, build_router
from llmrelay.store import database
from llmrelay.store.credentials import CredentialBox, local_secret
from llmrelay.store.schema import ModelAlias
from llmrelay.store.spool import spool_dir
from llmrelay.store.writer import LogWriter
from llmrelay.telemetry.metrics import Metrics
from llmrelay.upstream import HttpTransport

log = logging.getLogger("llmrelay")

Handler = Callable[["Gateway", Request, Send], Awaitable[None]]


class Gateway:
    """The running gateway: settings, storage, providers, and the ASGI entry point."""

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
        self._endpoints: dict[str, Endpoint] = {}
        self._handlers: dict[str, Handler] = {}
        self._methods: dict[str, str] = {}
        #: Routes whose path ends in a parameter: prefix -> (method, handler).
        self._prefixes: dict[str, tuple[str, Handler]] = {}
        self._previous_sigterm: Any = None
        self._previous_sigint: Any = None
        self._log_stream: IO[bytes] | None = None
        self._add_routes()

    # -- routes -----------------------------------------------------------------------
    def _add_routes(self) -> None:
        chat, embeddings = ChatCompletions(), Embeddings()
        for path in ("/v1/chat/completions", "/chat/completions"):
            self.add_endpoint(path, chat)
        for path in ("/v1/embeddings", "/embeddings"):
            self.add_endpoint(path, embeddings)
        self.add_endpoint("/v1/messages", Messages())
        self.add_handler(COUNT_TOKENS, "POST", count_tokens)
        responses = Responses()
        for path in ("/v1/responses", "/responses"):
            self.add_endpoint(path, responses)
        for path in ("/v1/models", "/models"):
            self.add_handler(path, "GET", list_models)
            # Model ids may hold slashes (``up/gpt-4o``): the id is the rest of the path.
            self._prefixes[path + "/"] = ("GET", retrieve_model)
        self.add_handler("/health", "GET", ops.health)
        self.add_handler("/health/ready", "GET", ops.ready)
        self.add_handler("/metrics", "GET", ops.metrics)
        self.add_handler("/api/db-stats", "GET", ops.db_stats)

    def add_endpoint(self, path: str, endpoint: Endpoint) -> None:
        self._endpoints[path] = endpoint
        self._methods[path] = "POST"

    def add_handler(self, path: str, method: str, handler: Handler) -> None:
        self._handlers[path] = handler
        self._methods[path] = method

    # -- ASGI -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Routing uses the ASGI path only, never a URL rebuilt from the Host header.
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        request = Request(scope, receive)
        method = self._methods.get(path)
        handler = None
        if method is None:
            for prefix, (method_, handler_) in self._prefixes.items():
                if path.startswith(prefix):
                    method, handler = method_, handler_
                    break
        if method is None:
            call = Call.start(request, path)
            missing = NotFound(f"no route for {scope['method']} {path}")
            await send_error(send, missing, call.response_headers(), _shaped(path, missing))
            return
        if scope["method"] != method:
            call = Call.start(request, path)
            wrong = MethodNotAllowed(f"{path} expects {method}, not {scope['method']}")
            await send_error(send, wrong, [*call.response_headers(), (b"allow", method.encode())],
                             _shaped(path, wrong))
            return
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            call = Call.start(request, path)
            if self.draining:
                closing = ServiceUnavailable("the gateway is shutting down; retry the request",
                                             headers={"connection": "close"})
                await send_error(send, closing, call.response_headers(),
                                 error_body(endpoint, closing))
                return
            await run(self, call, endpoint, send)
        else:
            await (handler or self._handlers[path])(self, request, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- start and stop -----------------------------------------------------------------
    async def startup(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.engine = database.create_engine(s.database_url)
        await database.migrate(self.engine)
        self.sessions = database.sessionmaker(self.engine)
        self.credentials = CredentialBox(self._secret())
        extra = await self._sync_providers()
        aliases = dict(await self._db_aliases())
        aliases.update(s.aliases)
        self.http = HttpTransport(max_body_bytes=s.max_upstream_body_bytes)
        self.mock = MockTransport()
        self.registry: Registry = build_registry(s, self.env, self.http, self.mock, extra)
        routes = {m.name: (m.provider, m.model) for m in s.models}
        self.resolver = Resolver(self.registry, routes, aliases)
        self.keys = KeyStore(self.sessions, KeyCachePolicy.from_settings(s))
        self.router: Router = build_router(s, self.registry, self.resolver, self.sessions)
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
        self.governor: Governor = self.governance.governor
        self.writer.sinks.append(write_usage)  # usage rows + summaries with each log batch
        self.metrics = Metrics(self._live_metrics)
        self.writer.observers.append(self.metrics.observe)
        self.writer.start()  # replays rows a previous process left in the spool
        self.metrics.watch_writer(self.writer.stats_dict)
        self.metrics.watch_keys(self.keys.counters)
        self.model_lists = ModelLists(self.registry, s.provider_reload_interval)
        self.model_lists.start()
        self._hook_sigterm()

    async def shutdown(self) -> None:
        s = self.settings
        self.draining = True
        # Calls a drain did not end (no signal hook, a second signal) end here, and their
        # rows are queued before the writer's last flush.
        await self.end_calls()
        await self.writer.close()
        await self.governance.close()
        await self.model_lists.close()
        await self.http.close()
        await self.router.close()
        # A hung database must not hang the exit: its pooled connections are just dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.engine.dispose(), s.log_db_timeout)
        if self._log_stream is not None and self._log_stream not in (
            sys.stdout.buffer, sys.stderr.buffer
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

    def _secret(self) -> str:
        if self.settings.master_key:
            return self.settings.master_key
        url = make_url(self.settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return local_secret(Path(url.database).with_suffix(".secret"))
        return local_secret(Path(self.env.get("LLMRELAY_SECRET_FILE", "llmrelay.secret")))

    async def _sync_providers(self) -> list[ProviderConfig]:
        """Store configured providers (credentials encrypted); return the DB-only ones."""
        return await sync_providers(self.sessions, self.credentials, self.settings, self.env)

    async def _db_aliases(self) -> list[tuple[str, str]]:
        async with self.sessions() as session:
            rows = await session.scalars(select(ModelAlias).where(ModelAlias.enabled.is_(True)))
            return [(r.alias, r.target) for r in rows]


def _shaped(path: str, exc: GatewayError) -> bytes | None:
    """A routing error's body in the API's own shape: Anthropic's under ``/v1/messages``."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return orjson.dumps(anthropic_error(exc))
    return None


def _chain(previous: Any, gw: Gateway) -> Any:
    if not callable(previous):
        return previous

    def handler(sig: int, frame: Any) -> None:
        try:
            gw.begin_drain(lambda: previous(sig, frame))
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


def create_app(settings: Settings | None = None) -> Gateway:
    """ASGI factory (``uvicorn --factory llmrelay.app:create_app``)."""
    return Gateway(settings or load_settings())
