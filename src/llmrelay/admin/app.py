"""The admin ASGI application: FastAPI, mounted by the gateway under ``/admin``.

The gateway's own router hands every ``/admin`` request here; :class:`AdminPlane`
builds the FastAPI application, and the proxy hot path never passes through it.
``import llmrelay.app`` does not import FastAPI: the gateway asks :meth:`AdminPlane.warm`
to build it in a thread once start-up is complete and the server listens (importing
FastAPI and pydantic and building the routes took about 1.2 s, which the first admin
call used to wait for), so neither start-up nor the proxy's first request waits for
it, and the first admin call finds it built (``admin.warm_up: false`` leaves the build
to the first admin call: the test suite's gateways that never call ``/admin``). A call
arriving during the build waits for that build instead of starting a second one.

Errors leave in the same shape as the proxy's (``{"error": {"message", "type", "param",
"code"}}``): a :class:`~llmrelay.errors.GatewayError` with its own status; a body or
query that fails validation is a ``400`` whose ``param`` names the field
(``body.rate_limit``); an unexpected exception is a bare ``500`` that says nothing of
its cause (it is logged).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from llmrelay.asgi import Receive, Scope, Send
from llmrelay.errors import GatewayError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from llmrelay.services import Services

log = logging.getLogger("llmrelay.admin")

#: The routers of the admin API, in the order the OpenAPI document lists them.
ROUTE_MODULES = (
    "routes_tokens",
    "routes_keys",
    "routes_teams",
    "routes_providers",
    "routes_models",
    "routes_aliases",
    "routes_route_configs",
    "routes_usage",
    "routes_requests",
    "routes_audit",
)


class AdminPlane:
    """ASGI entry of ``/admin``: the FastAPI application, built by :meth:`warm` (in a
    thread, after start-up) or else on first use."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._app: FastAPI | None = None
        self._warming: asyncio.Task[None] | None = None

    @property
    def built(self) -> bool:
        """Whether the FastAPI application exists (the first admin call will not build it)."""
        return self._app is not None

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            self._app = build_app(self.services)
        return self._app

    def warm(self) -> asyncio.Task[None] | None:
        """Start building the application in a worker thread; the task ends when it is
        built (or failed: then the first admin call builds it and reports the error).
        ``None`` with ``admin.warm_up`` off: the first admin call builds it."""
        if not self.services.settings.admin.warm_up:
            return None
        if self._app is None and self._warming is None:
            self._warming = asyncio.get_running_loop().create_task(self._warm())
        return self._warming

    async def _warm(self) -> None:
        await asyncio.sleep(0)  # let the server bind its sockets first
        try:
            app = await asyncio.to_thread(build_app, self.services)
        except Exception:
            log.exception("building the admin API in the background failed")
            return
        if self._app is None:
            self._app = app

    async def settle(self) -> None:
        """Wait for a build in progress (at shutdown: a thread cannot be cancelled, and
        its result must not arrive after the event loop is gone)."""
        if self._warming is not None and not self._warming.done():
            await asyncio.shield(self._warming)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        warming = self._warming
        if self._app is None and warming is not None and not warming.done():
            await asyncio.shield(warming)
        await self.app(scope, receive, send)


def error_body(exc: GatewayError) -> dict[str, Any]:
    return exc.to_dict()


def build_app(services: Services) -> FastAPI:
    import importlib

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(
        title="llmrelay admin API",
        version="1",
        openapi_url="/admin/openapi.json",
        docs_url="/admin/docs",
        redoc_url=None,
    )
    app.state.services = services

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        message = str(first.get("msg", "invalid request"))
        if where:
            message = f"{where}: {message}"
        body = {
            "error": {
                "message": message[:500],
                "type": "invalid_request_error",
                "param": where[:200] if where else None,
                "code": "invalid_value",
            }
        }
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "authentication_error", 403: "permission_error"}.get(
            exc.status_code, "invalid_request_error"
        )
        body = {"error": {"message": str(exc.detail), "type": kind, "param": None, "code": None}}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("admin request failed: %s %s", request.method, request.url.path)
        body = {
            "error": {
                "message": "internal error (logged by the gateway)",
                "type": "api_error",
                "param": None,
                "code": "internal_error",
            }
        }
        return JSONResponse(body, status_code=500)

    for name in ROUTE_MODULES:
        module = importlib.import_module(f"llmrelay.admin.{name}")
        app.include_router(module.router)
    return app
