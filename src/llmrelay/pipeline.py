"""The life of a model call, in one place, for every endpoint.

    authenticate → parse (the endpoint's codec) → plan (a route config, or the model's
    one resolved target; the key must be allowed every target) → admit (rate limits,
    budget reservation: 429 / 402) → plug-ins, before-steps (may answer the call)
    → attempts (the router: retries, fallbacks, load balancing, breakers)
    → plug-ins, after-steps / stream steps → encode for the client (the codec)
    → finish (the answer's headers) → finally: settle usage and exact cost, record the
    call's rows

The pipeline does every I/O step; an endpoint is only a :class:`~llmrelay.api.codec.
Codec` (translations) and plug-ins only see and change the call at their steps
(:mod:`llmrelay.plugins.chain`). Every stage raises a :class:`GatewayError` to stop;
the ``finally`` runs for every call that got past routing, also when the client
disconnects mid-stream or the gateway drains.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.api.codec import Codec
from llmrelay.asgi import (
    ClientDisconnected,
    Send,
    Unwatch,
    disconnect_watch,
    send_bytes,
    send_error,
)
from llmrelay.context import Call
from llmrelay.errors import (
    AuthenticationError,
    BudgetExceeded,
    GatewayError,
    InternalError,
    InvalidRequest,
    RateLimited,
)
from llmrelay.governance.pricing import format_usd
from llmrelay.json_limits import check_depth
from llmrelay.plugins.chain import Replay
from llmrelay.providers.base import ChatResult
from llmrelay.routing.resolve import Target, check_allowed
from llmrelay.routing.responses import BufferedResponse
from llmrelay.stream_relay import relay_replay, relay_stream
from llmrelay.telemetry import logs
from llmrelay.upstream import UpstreamResponse, upstream_request_id

if TYPE_CHECKING:
    from llmrelay.services import Services

log = logging.getLogger("llmrelay")


def api_key_of(call: Call) -> str:
    headers = call.request.headers
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
        raise AuthenticationError("missing or invalid Authorization header")
    key = headers.get("x-api-key") or headers.get("api-key")
    if key:
        return key.strip()
    raise AuthenticationError("missing or invalid Authorization header")


async def authenticate(services: Services, call: Call) -> None:
    call.key = await services.keys.authenticate(api_key_of(call))


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    check_depth(raw, body)  # deep-but-legal JSON would crash a re-encoding adapter
    return body


def finish(services: Services, call: Call, codec: Codec) -> list[tuple[bytes, bytes]]:
    """The answer's headers, for every endpoint and outcome: request id, overhead,
    provider, model, attempts, the exact cost once known, the client API's own."""
    cost = services.governor.cost_of(call)
    if cost is not None:
        call.extra_headers["x-llmrelay-cost-usd"] = format_usd(cost)
    own = codec.answer_headers(call)
    if own:
        call.extra_headers.update(own)
    return call.response_headers()


async def run(services: Services, call: Call, codec: Codec, send: Send) -> None:
    """Serve one model call end to end; never raises.

    Once a call may reach an upstream it can be cut short from outside (the client
    hangs up, the drain deadline comes: see :func:`_execute`); it then ends like any
    failed call, through the ``except`` below, and its ``finally`` records it.
    """
    logs.CURRENT_CALL.set(call)  # this task's log lines name the call (telemetry/logs.py)
    if services.tracing is not None:
        call.span = services.tracing.start(call)
    try:
        await authenticate(services, call)
        call.raw_body = await call.request.body(
            services.settings.max_body_bytes, services.settings.body_timeout
        )
        call.body = parse_json(call.raw_body)
        codec.parse(call, call.body)
        await _plan(services, call, codec)
        if call.plan is None and call.target is not None:
            local = await codec.local(call, call.target)
            if local is not None:  # no upstream, no limits, no row
                await respond(services, call, codec, send, local)
                return
        await services.governor.admit(call)  # rate limits + budget reservation (429 / 402)
        call.chain = services.plugins.chain_for(call)
        services.writer.begin(call.interaction(False))  # a trace that survives a SIGKILL
        await _execute(services, call, codec, send)
    except GatewayError as exc:
        call.error = exc
        call.status = exc.status
        if isinstance(exc, RateLimited | BudgetExceeded):  # refused calls leave no row
            reason = "rate_limited" if isinstance(exc, RateLimited) else "budget_exceeded"
            services.metrics.count_rejection(reason, call.key.name if call.key else None)
        if call.bytes_out == 0 and call.interrupted != "client":
            await send_error(send, exc, finish(services, call, codec), codec.render_error(exc))
    except ClientDisconnected:
        call.status = 499
        call.interrupted = "client"
    except Exception as exc:  # a bug of ours: answer 500 in the endpoint's shape, keep the row
        log.exception("unhandled error in %s", call.route)
        error = InternalError(f"internal error ({type(exc).__name__}); see the gateway log")
        call.error = error
        call.status = 500
        if call.bytes_out == 0:
            await send_error(send, error, finish(services, call, codec), codec.render_error(error))
    finally:
        # Plug-ins see the outcome (the cache stores a complete answer here, off the
        # client's time); then exact cost from usage (estimated from what was delivered
        # if a stream was cut), reservations released, spend recorded; the usage row
        # goes with the log row.
        if call.chain.entered:  # (a coroutine less for the calls no plug-in took part in)
            await call.chain.finish(call)
        await services.governor.settle(call)
        # Only calls that reached a provider, or were answered from the cache, are
        # recorded: rejected input leaves no row.
        if call.attempts or (call.cache is not None and call.cache.hit):
            await services.writer.submit(call.interaction(services.settings.log_bodies))
        else:
            services.writer.end(call.id)
        services.calls.discard(call)  # only now: shutdown waits for this before closing
        if call.span is not None:
            call.span.end(call)


async def _plan(services: Services, call: Call, codec: Codec) -> None:
    """The route plan, or the one target of a direct call; the key must be allowed it."""
    call.plan = await services.router.plan_for(call) if codec.routed else None
    if call.plan is not None and call.key is not None:
        call.plan = services.bound.plan(call.plan, call.key)
    if call.plan is None:
        assert call.model is not None and call.key is not None
        # A bound key's provider decides where an unprefixed model goes (seed 002).
        bound = services.bound.target(call.key, call.model)
        call.target = bound or services.resolver.resolve(call.model)
        # The target, by its own name or the requested name that resolved to it.
        check_allowed(call.key.allowed_models, call.target, (call.model,))


async def _execute(services: Services, call: Call, codec: Codec, send: Send) -> None:
    """:func:`_serve`, interruptible from outside; an interruption is raised as an error.

    The call joins ``services.calls`` (what the drain deadline interrupts) and a watcher
    cancels it when the client hangs up, so a gone client stops the upstream call at
    once instead of letting it run on and be billed as answered. The cancellation comes
    out here as :class:`ClientClosedRequest` (499, nothing sent) or, for the shutdown
    deadline or a cancellation by the server itself, :class:`ServiceUnavailable` (503
    in the endpoint's shape, if nothing was sent yet).
    """
    if services.calls_ended:
        call.interrupted = "shutdown"
        raise call.interruption("the call was not started")
    call.task = asyncio.current_task()
    services.calls.add(call)
    # llmrelay's own server tells of a lost connection by a callback (asgi.py,
    # DISCONNECT_EXTENSION); under any other, a task watches ``receive``.
    watch = disconnect_watch(call.request.scope)
    watcher: asyncio.Task[None] | None = None
    unwatch: Unwatch | None = None
    if watch is not None:
        unwatch = watch(functools.partial(call.interrupt, "client"))
    else:
        watcher = asyncio.create_task(_wait_disconnect(call))
    try:
        await _serve(services, call, codec, send)
        # The whole answer is out (nothing awaits after its last send): from now on the
        # server's report of the response's end comes to ``receive`` like a disconnect,
        # and the mark keeps the watcher (and a drain) from taking it for a client that
        # left. Marked here, not by wrapping ``send``: a wrapper cost a coroutine per
        # write, and a stream writes once per upstream read.
        call.replied = True
    except asyncio.CancelledError:
        if call.task is None:
            raise
        call.task.uncancel()
        if call.replied:  # the server cancelled a call that had already answered
            return
        raise call.interruption("the call was ended before it was answered") from None
    finally:
        if watcher is not None:
            watcher.cancel()
        if unwatch is not None:
            unwatch()


async def _serve(services: Services, call: Call, codec: Codec, send: Send) -> None:
    """Plug-ins before, the attempts (unless a plug-in answered), plug-ins after, encode."""
    answer = await call.chain.before(call) if call.chain.plugins else None
    if call.stream:
        if answer is None:
            resp = await open_routed(services, call, codec, stream=True)
            await relay_stream(services, call, codec, resp, send, finish)
        elif isinstance(answer, Replay):
            await relay_replay(services, call, codec, answer, send, finish)
        else:
            raise InternalError("a plug-in answered a streaming call with a whole answer")
        return
    if answer is None:
        resp = await open_routed(services, call, codec, stream=False)
        result = read_answer(call, resp)
    elif isinstance(answer, ChatResult):
        result = answer
    else:
        raise InternalError("a plug-in answered a non-streaming call with a stream")
    if call.chain.entered:
        result = await call.chain.after(call, result)
    call.usage = result.usage
    call.finish_reason = result.finish_reason
    body = codec.encode(call, result)
    if call.answer_fields:
        body = orjson.dumps({**orjson.loads(body), **call.answer_fields})
    await respond(services, call, codec, send, body)


async def open_routed(
    services: Services, call: Call, codec: Codec, *, stream: bool
) -> UpstreamResponse:
    """Open the upstream answer for this call: the routing seam.

    The router (``routing/router.py``) tries targets per the route plan, with retries,
    fallback, load balancing, timeouts and circuit breaking, until one answers or the
    plan is spent; the codec builds each attempt's request (a target that cannot serve
    the call fails its attempt with ``CapabilityMissing``). On return ``call.target``
    answered with a 2xx; a non-streamed body has been read and decoded by the codec
    inside the attempt (see :func:`read_answer`), a stream's first chunk has arrived.
    """

    def build(target: Target) -> Any:
        return codec.build(call, target)

    def decode(target: Target, raw: bytes) -> ChatResult:
        return codec.decode(call, target, raw)

    resp = await services.router.open(call, build, stream=stream, parse=None if stream else decode)
    call.upstream_request_id = upstream_request_id(resp.headers)
    return resp


def read_answer(call: Call, resp: UpstreamResponse) -> ChatResult:
    """The target's non-streamed answer as the codec decoded it in the attempt, so a 2xx
    that is not the provider's answer (not JSON, not its shape) failed that attempt like
    an error status would (recorded, retried or fallen back on per the route, a 502
    ``upstream_invalid_response`` when nothing else answered), never a 200 relaying
    garbage."""
    assert call.target is not None
    assert isinstance(resp, BufferedResponse) and resp.answer is not None
    call.target.provider.state.ok()
    return resp.answer


async def respond(
    services: Services, call: Call, codec: Codec, send: Send, body: bytes, status: int = 200
) -> None:
    """Send a whole JSON answer (the finish step sets its headers)."""
    call.response_body = body
    call.status = status
    call.bytes_out = len(body)
    await send_bytes(send, status, body, finish(services, call, codec))


async def _wait_disconnect(call: Call) -> None:
    """Interrupt the call when its client hangs up (the body has been read by now)."""
    receive = call.request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.interrupt("client")  # a no-op once the answer is complete
            return
