"""Operational endpoints: liveness, readiness, metrics, database statistics.

Exposure (THREAT_MODEL.md): ``/health`` is always open (load balancers). ``/metrics``
(per-key series) and the detail of ``/health/ready`` (providers, circuits, queues) need
``Authorization: Bearer <metrics_token or master_key>`` once either is configured;
without it ``/health/ready`` still answers its status code with only ``{"status"}``,
so probes need no secret. With neither configured (a development gateway) both are open.
Every database operation here has ``database_timeout``, so a hung database cannot hang
readiness itself.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.asgi import Request, Send, send_bytes
from llmrelay.errors import AuthenticationError, ServiceUnavailable
from llmrelay.store.deadline import within

if TYPE_CHECKING:
    from llmrelay.services import Services

TEXT_CT = (b"content-type", b"text/plain; charset=utf-8")


async def health(services: Services, request: Request, send: Send) -> None:
    """Liveness for load balancers: ``OK`` while serving, 503 once draining."""
    if services.draining:
        await send_bytes(send, 503, b"draining", [], TEXT_CT)
    else:
        await send_bytes(send, 200, b"OK", [], TEXT_CT)


def may_see_details(services: Services, request: Request) -> bool:
    """Whether the request carries the metrics token or the master key (or none is set)."""
    secrets = [t for t in (services.settings.metrics_token, services.settings.master_key) if t]
    if not secrets:
        return True
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    given = token.strip().encode()
    # Compare against every secret (no early exit), so timing tells nothing about which.
    matches = [hmac.compare_digest(given, secret.encode()) for secret in secrets]
    return any(matches)


async def _select_one(services: Services) -> None:
    async with services.engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def _database_check(services: Services) -> dict[str, object]:
    t0 = time.perf_counter()
    try:
        await within(services.settings.database_timeout, _select_one(services))
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {services.settings.database_timeout:g}s"}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 3)}


async def _circuits(services: Services) -> Any:
    try:
        async with asyncio.timeout(services.settings.database_timeout):
            return await services.router.breaker.snapshot()
    except TimeoutError:
        return {"error": "circuit state did not answer in time"}


async def _probes(services: Services) -> Any:
    """The last ``llmrelay probe`` of each provider (outcomes only, bounded)."""
    # The probe package (its wire client, tiers, report) is the CLI's: a readiness
    # check with details reads one table of it, so the server imports it on that call.
    from llmrelay.probe.history import last_probe_by_provider

    try:
        return await within(
            services.settings.database_timeout, last_probe_by_provider(services.engine)
        )
    except TimeoutError:
        return {"error": "the probe history did not answer in time"}
    except Exception as exc:  # readiness reports, it never fails on its detail
        return {"error": type(exc).__name__}


async def ready(services: Services, request: Request, send: Send) -> None:
    """Readiness: the database answers; what we last saw of each provider and target."""
    db = await _database_check(services)
    is_ready = bool(db["ok"]) and not services.draining
    status = 200 if is_ready else 503
    body: dict[str, object] = {"status": "ready" if is_ready else "not_ready"}
    if not may_see_details(services, request):
        await send_bytes(send, status, orjson.dumps(body), [])
        return
    body.update(
        {
            "draining": services.draining,
            "database": db,
            "providers": {
                p.name: {"type": p.spec.type, **p.state.as_dict()} for p in services.registry
            },
            # Circuit breakers per target; an open one is skipped by routing, not a failure.
            "circuits": await _circuits(services),
            # Limits/budgets backend: "local" or "redis" (with its breaker state and fail mode).
            "governance": services.governor.status(),
            "log_queue": services.writer.pending,
            # Key lookups: what the caches spared the database, and whether it counts as down.
            "keys": {"database_down": services.keys.database_down, **services.keys.stats.as_dict()},
            "route_configs": services.router.selector.configs.status(),
            # The response cache's store: "memory" (entries, bytes) or "redis" (available).
            "cache": services.cache.status(),
            # Run-time changes: the Redis listener and the database poll (changes.py).
            "changes": services.changes.status(),
            # The last probe run per provider (docs/probe.md): when, tested, passed.
            "probes": await _probes(services),
        }
    )
    await send_bytes(send, status, orjson.dumps(body), [])


async def metrics(services: Services, request: Request, send: Send) -> None:
    """Prometheus text exposition: every worker's counters summed (telemetry/scrape.py),
    with the circuit breakers' states as the routing backend reports them now."""
    if not may_see_details(services, request):
        exc = AuthenticationError(
            "/metrics needs Authorization: Bearer <metrics_token> (or the master key)"
        )
        await send_bytes(send, exc.status, exc.body(), [(b"www-authenticate", b"Bearer")])
        return
    content_type = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
    circuits = await _circuits(services)
    body = services.metrics.render(None if "error" in circuits else circuits)
    await send_bytes(send, 200, body, [], content_type)


async def db_stats(services: Services, request: Request, send: Send) -> None:
    """Row counts and the measured cost of logging (seed 001's ``/api/db-stats``).

    Needs the master key when one is configured.
    """
    master = services.settings.master_key
    if master:
        auth = request.header("authorization") or ""
        if not hmac.compare_digest(auth.removeprefix("Bearer ").strip().encode(), master.encode()):
            exc = AuthenticationError("this endpoint needs the master key")
            await send_bytes(send, exc.status, exc.body(), [])
            return

    async def count() -> tuple[int | None, int | None]:
        async with services.engine.connect() as conn:
            return (
                (await conn.exec_driver_sql("SELECT COUNT(*) FROM requests")).scalar(),
                (await conn.exec_driver_sql("SELECT COUNT(*) FROM responses")).scalar(),
            )

    try:
        requests, responses = await within(services.settings.database_timeout, count())
    except Exception as exc:  # timed out, refused, reset: all "the database is away"
        down = ServiceUnavailable(
            f"the database did not answer ({type(exc).__name__})", code="database_unavailable"
        )
        await send_bytes(send, down.status, down.body(), [])
        return
    body = {
        "requests": requests,
        "responses": responses,
        # Includes the spool (rows kept for an absent database) and dead-letter counts.
        "writer": services.writer.stats_dict(),
    }
    await send_bytes(send, 200, orjson.dumps(body), [])
