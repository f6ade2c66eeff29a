"""The mock upstream HTTP server: the aiohttp app and its runners.

Layout, so further wire formats slot in without touching the others:

* :class:`~.state.MockState` holds everything mutable (script queue, request log,
  config) and is passed explicitly; there is no module-level state, so several
  mocks can run side by side in one process.
* a *route factory* (:data:`~.state.RouteFactory`) per wire format, in its
  ``*_routes.py``, over the pure builders of :mod:`llmrelay.mock_answers` (shared with
  the built-in ``mock`` provider, which must not load this server); the handlers share the
  scripted prologue of :class:`~.wire_handlers.WireHandlers` and reuse
  :mod:`.script` for behaviours. Factories are passed to :func:`build_app`
  (the default set is :data:`DEFAULT_PROVIDERS`).
* the provider-neutral parts: request recording middleware and the
  ``/_mock/*`` control endpoints used by out-of-process tests and demos.
* :class:`MockUpstream` runs the app on its own thread and event loop, so it
  works from any test regardless of which loop (or none) the test uses;
  :func:`serve_forever` runs it in the foreground for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from llmrelay.mock_answers import openai_format as oa

from .anthropic_routes import anthropic_routes
from .azure_routes import azure_routes
from .bedrock_routes import bedrock_routes
from .gemini_routes import gemini_routes
from .openai_routes import openai_routes
from .script import (
    Abort,
    Behaviour,
    BehaviourError,
    RecordedRequest,
    parse_behaviour_list,
    record_request,
)
from .state import MockState, RouteFactory
from .wire_handlers import Handler, json_response

logger = logging.getLogger("llmrelay.mock_upstream")

#: Large prompts in load tests should not trip aiohttp's 1 MiB default.
CLIENT_MAX_SIZE = 64 * 1024 * 1024
#: Seconds in-flight handlers (e.g. a stalled stream) get when the server stops;
#: aiohttp waits up to twice this.  A mock owes nobody a graceful shutdown.
SHUTDOWN_TIMEOUT = 0.25
CONTROL_PREFIX = "/_mock/"

DEFAULT_PROVIDERS: tuple[RouteFactory, ...] = (
    openai_routes,
    anthropic_routes,
    gemini_routes,
    bedrock_routes,
    azure_routes,
)


# -- provider-neutral parts --------------------------------------------------------


def _control_routes(state: MockState) -> list[web.RouteDef]:
    """``/_mock/*``: script, reset and inspect the mock over HTTP."""

    async def script(request: web.Request) -> web.StreamResponse:
        try:
            behaviours = parse_behaviour_list(orjson.loads(await request.read()))
        except (orjson.JSONDecodeError, BehaviourError) as exc:
            return json_response({"error": str(exc)}, status=400)
        state.script.push(*behaviours)
        return json_response({"queued": len(state.script)})

    async def reset(request: web.Request) -> web.StreamResponse:
        state.script.clear()
        state.log.clear()
        return json_response({"ok": True})

    async def requests(request: web.Request) -> web.StreamResponse:
        return json_response([item.to_dict() for item in state.log.snapshot()])

    return [
        web.post(CONTROL_PREFIX + "script", script),
        web.post(CONTROL_PREFIX + "reset", reset),
        web.get(CONTROL_PREFIX + "requests", requests, allow_head=False),
    ]


def _recording_middleware(state: MockState) -> Any:
    """Record every non-control request before it is handled.

    Recording happens first so even requests that are then failed, dropped or
    routed nowhere show up in the log.  Unknown paths get OpenAI's "Invalid
    URL" error instead of aiohttp's plain-text 404, so a gateway bug reads
    like one.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(CONTROL_PREFIX):
            state.log.append(await record_request(request))
        try:
            return await handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            # The client hung up mid-answer (handler_cancellation cancels the handler).
            state.log.abort(request.path)
            raise
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            message = f"Invalid URL ({request.method} {request.path})"
            body = oa.error_body(exc.status, message=message)
            body["error"]["code"] = None  # OpenAI's invalid-URL error carries no code
            return json_response(body, status=exc.status)

    return middleware


def build_app(
    state: MockState, providers: Sequence[RouteFactory] = DEFAULT_PROVIDERS
) -> web.Application:
    """The aiohttp application serving ``providers`` plus the control routes."""
    app = web.Application(
        middlewares=[_recording_middleware(state)], client_max_size=CLIENT_MAX_SIZE
    )
    for factory in providers:
        app.add_routes(factory(state))
    app.add_routes(_control_routes(state))
    return app


def _make_runner(app: web.Application) -> web.AppRunner:
    # handler_cancellation: a client that hangs up during ``delay_ms`` should
    # not leave a handler sleeping and later writing to a dead socket.
    return web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


def _base_url(host: str, port: int, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/v1"


# -- in-process runner -------------------------------------------------------------


class MockUpstream:
    """The mock on a background thread with its own event loop.

    Usage::

        with MockUpstream() as mock:
            client = openai.OpenAI(base_url=mock.base_url, api_key="x")
            mock.script(Behaviour(status=429))
            ...
            assert mock.requests[-1].headers["authorization"] == "Bearer x"
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Iterable[str] = oa.DEFAULT_MODELS,
        api_key: str | None = None,
        providers: Sequence[RouteFactory] = DEFAULT_PROVIDERS,
        model_behaviours: Mapping[str, Behaviour | Mapping[str, Any]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        #: Serve ``https://`` with this context (:mod:`.tls` makes a throwaway CA).
        self.ssl_context = ssl_context
        self._requested_port = port
        self._providers = tuple(providers)
        self._state = MockState(
            models=tuple(models),
            api_key=api_key,
            model_behaviours=tuple(
                (pattern, Behaviour.coerce(b)) for pattern, b in (model_behaviours or {}).items()
            ),
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    # lifecycle

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; returns once the socket is bound (port known)."""
        if self._thread is not None:
            raise RuntimeError("MockUpstream already started")
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name="mock-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("mock upstream did not start in time")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._thread, error, self._startup_error = None, self._startup_error, None
            raise RuntimeError("mock upstream failed to start") from error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join its thread.  Safe to call twice."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed: thread is ending anyway
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("mock upstream did not stop in time")
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _thread_main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = _make_runner(build_app(self._state, self._providers))
        try:
            await runner.setup()
            site = web.TCPSite(
                runner, self.host, self._requested_port, ssl_context=self.ssl_context
            )
            await site.start()
            self._port = _bound_port(runner)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MockUpstream not started")
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ``http://HOST:PORT/v1`` (``https://`` on TLS)."""
        return _base_url(self.host, self.port, "https" if self.ssl_context else "http")

    @property
    def root_url(self) -> str:
        """``http(s)://HOST:PORT`` (for ``/_mock/*`` and non-``/v1`` providers)."""
        return self.base_url.removesuffix("/v1")

    # scripting and inspection

    def script(self, *behaviours: Behaviour | Mapping[str, Any]) -> None:
        """Queue behaviours for the next chat/embeddings requests, in order."""
        self._state.script.push(*(Behaviour.coerce(b) for b in behaviours))

    def reset(self) -> None:
        """Forget queued behaviours and recorded requests."""
        self._state.script.clear()
        self._state.log.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far (control calls excluded)."""
        return self._state.log.snapshot()

    @property
    def last_request(self) -> RecordedRequest:
        items = self._state.log.snapshot()
        if not items:
            raise LookupError("the mock upstream has not received any request")
        return items[-1]

    @property
    def aborts(self) -> list[Abort]:
        """Requests whose connection the client closed before the answer was complete."""
        return self._state.log.aborts()

    @property
    def pending_script(self) -> list[Behaviour]:
        """Queued behaviours not consumed yet."""
        return self._state.script.pending()


# -- foreground runner -------------------------------------------------------------


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    models: Iterable[str] = oa.DEFAULT_MODELS,
    api_key: str | None = None,
    providers: Sequence[RouteFactory] = DEFAULT_PROVIDERS,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``llmrelay mock-upstream``).

    Uses uvloop when installed: the mock is the baseline in gateway overhead
    benchmarks, so it should not be the bottleneck.
    """
    if not logging.getLogger().hasHandlers():
        # Entry point with nobody else configuring logging: make the
        # "listening on" line visible.
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    state = MockState(models=tuple(models), api_key=api_key)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(_serve_until_signal(state, host, port, tuple(providers)))
        except KeyboardInterrupt:
            pass


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve_until_signal(
    state: MockState, host: str, port: int, providers: Sequence[RouteFactory]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # No loop signal handlers on Windows or off the main thread: Ctrl-C still works.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = _make_runner(build_app(state, providers))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("mock upstream listening on %s", _base_url(host, _bound_port(runner)))
        await stop.wait()
    finally:
        await runner.cleanup()
