"""The ASGI application: the route table and the server's lifespan.

A request is dispatched here by its path: a model call to :func:`llmrelay.pipeline.run`
with its endpoint's codec, anything else to its handler. What they all need is one
:class:`~llmrelay.services.Services`, built at start-up (no module-level state), so
tests can run several gateways with different settings side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from llmrelay.admin.app import AdminPlane
from llmrelay.api import ops
from llmrelay.api.chat import ChatCompletionsCodec
from llmrelay.api.codec import Codec
from llmrelay.api.count_tokens import CountTokensCodec
from llmrelay.api.embeddings import EmbeddingsCodec
from llmrelay.api.messages import MessagesCodec, anthropic_error_body
from llmrelay.api.models import list_models, retrieve_model
from llmrelay.api.responses import ResponsesCodec
from llmrelay.asgi import Receive, Request, Scope, Send, send_error
from llmrelay.config import ConfigError, Settings, load_settings
from llmrelay.context import Call
from llmrelay.cors import CorsPolicy, header
from llmrelay.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from llmrelay.gc_tuning import freeze_after, freeze_startup_heap
from llmrelay.malloc_tuning import start_trimmer, stop_trimmer
from llmrelay.pipeline import run
from llmrelay.ui.serve import UiFiles

if TYPE_CHECKING:
    from llmrelay.services import Services

log = logging.getLogger("llmrelay")

Handler = Callable[["Services", Request, Send], Awaitable[None]]


class Gateway:
    """The running gateway: settings, storage, providers, and the ASGI entry point."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        # The services' modules (storage with SQLAlchemy, the writer, governance, cache)
        # load with the first gateway, not with this module: ``import llmrelay.app``
        # stays within its budget (tests/unit/test_import_budget.py, issue 14).
        from llmrelay.services import Services

        self.services = Services(settings, env)
        self.settings = settings
        self._codecs: dict[str, Codec] = {}
        self._handlers: dict[str, Handler] = {}
        self._methods: dict[str, str] = {}
        #: Routes whose path ends in a parameter: prefix -> (method, handler).
        self._prefixes: dict[str, tuple[str, Handler]] = {}
        self._responses = ResponsesCodec()  # its secret scrubber is bound at start
        #: ``/admin``: FastAPI, built in a thread after start-up (never on the hot path).
        self.admin = AdminPlane(self.services)
        #: ``/ui``: the web UI's static files (ui/serve.py), read on the first request.
        self.ui = UiFiles()
        #: ``cors_origins`` (cors.py); ``None``: no CORS headers, browsers refuse.
        self.cors = (
            CorsPolicy(settings.cors_origins, settings.cors_max_age)
            if settings.cors_origins
            else None
        )
        self._add_routes()

    # -- routes -----------------------------------------------------------------------
    def _add_routes(self) -> None:
        # OpenAI's endpoints also answer without the /v1 prefix (clients configured with
        # a bare base URL); Anthropic's only with it, as Anthropic serves them.
        for codec, bare in (
            (ChatCompletionsCodec(), True),
            (EmbeddingsCodec(), True),
            (self._responses, True),
            (MessagesCodec(), False),
            (CountTokensCodec(), False),
        ):
            self.add_codec(codec.route, codec)
            if bare:
                self.add_codec(codec.route.removeprefix("/v1"), codec)
        for path in ("/v1/models", "/models"):
            self.add_handler(path, "GET", list_models)
            # Model ids may hold slashes (``up/gpt-4o``): the id is the rest of the path.
            self._prefixes[path + "/"] = ("GET", retrieve_model)
        self.add_handler("/health", "GET", ops.health)
        self.add_handler("/health/ready", "GET", ops.ready)
        self.add_handler("/metrics", "GET", ops.metrics)
        self.add_handler("/api/db-stats", "GET", ops.db_stats)

    def add_codec(self, path: str, codec: Codec) -> None:
        self._codecs[path] = codec
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
        if path.startswith("/admin") and (len(path) == 6 or path[6] == "/"):
            await self.admin(scope, receive, send)
            return
        if path.startswith("/ui") and (len(path) == 3 or path[3] == "/"):
            await self.ui(scope, receive, send)
            return
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        if self.cors is not None:
            origin = header(scope, b"origin")
            if origin is not None:
                if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
                    await self._preflight(scope, receive, send, path, origin)
                    return
                if self.cors.allows(origin.decode("latin-1")):
                    send = self.cors.wrap(origin, send)
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
            await send_error(
                send,
                wrong,
                [*call.response_headers(), (b"allow", method.encode())],
                _shaped(path, wrong),
            )
            return
        codec = self._codecs.get(path)
        if codec is not None:
            call = Call.start(request, path)
            if self.services.draining:
                closing = ServiceUnavailable(
                    "the gateway is shutting down; retry the request",
                    headers={"connection": "close"},
                )
                await send_error(
                    send, closing, call.response_headers(), codec.render_error(closing)
                )
                return
            await run(self.services, call, codec, send)
        else:
            await (handler or self._handlers[path])(self.services, request, send)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, path: str, origin: bytes
    ) -> None:
        """A browser's ``OPTIONS`` preflight: ``204`` for an allowed origin, else ``403``."""
        assert self.cors is not None
        call = Call.start(Request(scope, receive), path)
        method = self._methods.get(path) or next(
            (m for prefix, (m, _) in self._prefixes.items() if path.startswith(prefix)), None
        )
        if method is None:
            missing = NotFound(f"no route for {path}")
            await send_error(send, missing, call.response_headers(), _shaped(path, missing))
            return
        if not self.cors.allows(origin.decode("latin-1")):
            refused = PermissionDenied(
                "this origin may not call the gateway (see cors_origins)",
                code="cors_origin_not_allowed",
            )
            await send_error(send, refused, call.response_headers(), _shaped(path, refused))
            return
        requested = header(scope, b"access-control-request-headers") or b""
        headers = [*call.response_headers(), *self.cors.preflight(origin, method, requested)]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        trimmer = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ConfigError as exc:  # the operator's to fix: the message, no trace
                    log.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # Served from now on: the start-up heap is never collected again.
                freeze_startup_heap()
                await send({"type": "lifespan.startup.complete"})
                # The server listens once start-up is complete: build the admin API
                # then, aside, so the first admin call does not wait ~1 s for it; what
                # it builds is frozen too once it is done.
                freeze_after(self.admin.warm())
                trimmer = start_trimmer()  # freed C memory back to the system (soak)
            elif message["type"] == "lifespan.shutdown":
                stop_trimmer(trimmer)
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- start and stop -------------------------------------------------------------
    async def startup(self) -> None:
        await self.services.start()
        self._responses.redact = self.services.router.redactor.text

    async def shutdown(self) -> None:
        await self.admin.settle()
        await self.services.close()

    def begin_drain(self, then: Callable[[], None] | None = None) -> None:
        """SIGTERM: see :meth:`Services.begin_drain`."""
        self.services.begin_drain(then)


def _shaped(path: str, exc: GatewayError) -> bytes | None:
    """A routing error's body in the API's own shape: Anthropic's under ``/v1/messages``."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return anthropic_error_body(exc)
    return None


def create_app(settings: Settings | None = None) -> Gateway:
    """ASGI factory (``uvicorn --factory llmrelay.app:create_app``)."""
    return Gateway(settings or load_settings())
