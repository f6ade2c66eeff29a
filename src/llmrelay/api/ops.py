"""Operational endpoints: liveness, readiness, database statistics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import func, select, text

from llmrelay.asgi import Request, Send, send_bytes
from llmrelay.errors import AuthenticationError
from llmrelay.store.schema import RequestRow, ResponseRow

if TYPE_CHECKING:
    from llmrelay.app import Gateway

TEXT_CT = (b"content-type", b"text/plain; charset=utf-8")


async def health(gw: Gateway, request: Request, send: Send) -> None:
    """Liveness for load balancers: ``OK`` while serving, 503 once draining."""
    if gw.draining:
        await send_bytes(send, 503, b"draining", [], TEXT_CT)
    else:
        await send_bytes(send, 200, b"OK", [], TEXT_CT)


async def ready(gw: Gateway, request: Request, send: Send) -> None:
    """Readiness: the database answers; what we last saw of each provider and target."""
    db: dict[str, object] = {"ok": False}
    t0 = time.perf_counter()
    try:
        async with gw.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        db = {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 3)}
    except Exception as exc:
        db = {"ok": False, "error": type(exc).__name__}
    providers = {p.name: {"type": p.spec.type, **p.state.as_dict()} for p in gw.registry}
    # Circuit breakers per target; an open one is skipped by routing, not a readiness failure.
    circuits = await gw.router.breaker.snapshot()
    is_ready = bool(db["ok"]) and not gw.draining
    body = {
        "status": "ready" if is_ready else "not_ready",
        "draining": gw.draining,
        "database": db,
        "providers": providers,
        "circuits": circuits,
        # Limits/budgets backend: "local" or "redis" (with its breaker state and fail mode).
        "governance": gw.governor.status(),
        "log_queue": gw.writer.pending,
    }
    await send_bytes(send, 200 if is_ready else 503, orjson.dumps(body), [])


async def metrics(gw: Gateway, request: Request, send: Send) -> None:
    """Prometheus text exposition (per process; scrape every worker or run one)."""
    content_type = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
    await send_bytes(send, 200, gw.metrics.render(), [], content_type)


async def db_stats(gw: Gateway, request: Request, send: Send) -> None:
    """Row counts and the measured cost of logging (seed 001's ``/api/db-stats``).

    Needs the master key when one is configured.
    """
    master = gw.settings.master_key
    if master:
        auth = request.header("authorization") or ""
        import hmac

        if not hmac.compare_digest(auth.removeprefix("Bearer ").strip(), master):
            exc = AuthenticationError("this endpoint needs the master key")
            await send_bytes(send, exc.status, exc.body(), [])
            return
    async with gw.engine.connect() as conn:
        requests = await conn.scalar(select(func.count()).select_from(RequestRow))
        responses = await conn.scalar(select(func.count()).select_from(ResponseRow))
    body = {
        "requests": requests,
        "responses": responses,
        "writer": gw.writer.stats.as_dict(gw.writer.pending),
    }
    await send_bytes(send, 200, orjson.dumps(body), [])
