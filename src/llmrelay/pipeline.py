"""The life of a request, in one place.

    authenticate → read + validate body → route plan (a route config, or the model's
    one resolved target) → check the key may use every target
    → governance: admit (rate limits, budget reservation; 429 / 402)
    → endpoint.execute (build upstream call → send → relay / translate answer)
    → finally: settle usage and exact cost, update provider state, queue the log row

Every stage raises a :class:`GatewayError` to stop; the ``finally`` runs for every
request that got past routing, also when the client disconnects mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from llmrelay.asgi import SSE_HEADERS, ClientDisconnected, Message, Send, send_bytes, send_error
from llmrelay.context import Call
from llmrelay.errors import (
    AuthenticationError,
    BudgetExceeded,
    ClientClosedRequest,
    GatewayError,
    InternalError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
    UpstreamUnreachable,
)
from llmrelay.json_limits import check_depth
from llmrelay.providers.base import ChatResult, FrameSplitter, StreamTranslator, UpstreamCall
from llmrelay.routing.resolve import Target, check_allowed
from llmrelay.routing.responses import BufferedResponse
from llmrelay.routing.router import ParseAnswer
from llmrelay.sse import encode_json
from llmrelay.stream_encoding import OutputEncoder, encode_all
from llmrelay.upstream import UpstreamResponse, upstream_request_id

if TYPE_CHECKING:
    from llmrelay.app import Gateway

log = logging.getLogger("llmrelay")


class Endpoint(Protocol):
    """One API operation (chat completions, embeddings, ...)."""

    def validate(self, body: dict[str, Any]) -> tuple[str, bool]:
        """Check the body; return the requested model and whether to stream."""
        ...

    async def execute(self, gw: Gateway, call: Call, send: Send) -> None:
        """Call the upstream and write the whole response to the client."""
        ...


def error_body(endpoint: Endpoint, exc: GatewayError) -> bytes:
    """The error body in the endpoint's own wire format (OpenAI's unless it says)."""
    render = getattr(endpoint, "render_error", None)
    return render(exc) if render is not None else exc.body()


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


async def authenticate(gw: Gateway, call: Call) -> None:
    call.key = await gw.keys.authenticate(api_key_of(call))


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


async def run(gw: Gateway, call: Call, endpoint: Endpoint, send: Send) -> None:
    """Serve one model call end to end; never raises.

    Once a call may reach an upstream it can be cut short from outside (the client
    hangs up, the drain deadline comes: see :func:`_execute`); it then ends like any
    failed call, through the ``except`` below, and its ``finally`` records it.
    """
    try:
        await authenticate(gw, call)
        call.raw_body = await call.request.body(gw.settings.max_body_bytes,
                                                gw.settings.body_timeout)
        call.body = parse_json(call.raw_body)
        call.model, call.stream = endpoint.validate(call.body)
        call.plan = await gw.router.plan_for(call)
        if call.plan is None:
            call.target = gw.resolver.resolve(call.model)
            assert call.key is not None
            # The target, by its own name or the requested name that resolved to it.
            check_allowed(call.key.allowed_models, call.target, (call.model,))
        await gw.governor.admit(call)  # rate limits + budget reservation (429 / 402)
        gw.writer.begin(call.interaction(False))  # a trace that survives a SIGKILL
        await _execute(gw, call, endpoint, send)
    except GatewayError as exc:
        call.error = exc
        call.status = exc.http_status
        if call.bytes_out == 0 and call.interrupted != "client":
            await send_error(send, exc, call.response_headers(), error_body(endpoint, exc))
    except ClientDisconnected:
        call.status = 499
        call.interrupted = "client"
    except Exception as exc:  # a bug of ours: answer 500 in the OpenAI shape, keep the row
        log.exception("unhandled error in %s", call.route)
        error = InternalError(f"internal error ({type(exc).__name__}); see the gateway log")
        call.error = error
        call.status = 500
        if call.bytes_out == 0:
            await send_error(send, error, call.response_headers(), error_body(endpoint, error))
    finally:
        # Exact cost from usage (estimated from what was delivered if a stream was cut),
        # reservations released, spend recorded; the usage row goes with the log row.
        await gw.governor.settle(call)
        # Only calls that reached a provider are recorded: rejected input leaves no row.
        if call.attempts:
            await gw.writer.submit(call.interaction(gw.settings.log_bodies))
        else:
            gw.writer.end(call.id)
        gw.calls.discard(call)  # only now: shutdown waits for this before closing the writer


async def _execute(gw: Gateway, call: Call, endpoint: Endpoint, send: Send) -> None:
    """``endpoint.execute``, interruptible from outside; an interruption is raised as an error.

    The call joins ``gw.calls`` (what the drain deadline interrupts) and a watcher
    cancels it when the client hangs up, so a gone client stops the upstream call at
    once instead of letting it run on and be billed as answered. The cancellation comes
    out here as :class:`ClientClosedRequest` (499, nothing sent) or, for the shutdown
    deadline or a cancellation by the server itself, :class:`ServiceUnavailable` (503
    in the endpoint's shape, if nothing was sent yet).
    """
    if gw.calls_ended:
        call.interrupted = "shutdown"
        raise _interruption(call, "the call was not started")
    call.task = asyncio.current_task()
    gw.calls.add(call)
    watcher = asyncio.create_task(_wait_disconnect(call))
    try:
        await endpoint.execute(gw, call, _tracked(call, send))
    except asyncio.CancelledError:
        if call.task is None:
            raise
        call.task.uncancel()
        if call.replied:  # the server cancelled a call that had already answered
            return
        raise _interruption(call, "the call was ended before it was answered") from None
    finally:
        watcher.cancel()


def _tracked(call: Call, send: Send) -> Send:
    """``send`` that marks the call replied once the last byte is out.

    The server reports the end of a response to ``receive`` like a disconnect; the
    mark keeps the watcher from taking that for a client that left.
    """

    async def tracked(message: Message) -> None:
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            call.replied = True

    return tracked


def _interruption(call: Call, what: str) -> GatewayError:
    """The error that ends an interrupted call; a cancellation nobody asked for through
    :meth:`Call.interrupt` is the server stopping (uvicorn cancels what outlives it)."""
    if call.interrupted is None:
        call.interrupted = "shutdown"
    if call.interrupted == "client":
        return ClientClosedRequest("the client disconnected before the answer was complete")
    return ServiceUnavailable(f"the gateway is shutting down; {what}; retry the request",
                              headers={"connection": "close"})


#: Builds the provider request for one target (adapters differ per target). It must
#: build from ``target.body_for(body)`` so a route's ``override_params`` apply.
BuildCall = Callable[[Target], UpstreamCall]


async def open_routed(
    gw: Gateway, call: Call, build: BuildCall, *, stream: bool,
    parse: ParseAnswer | None = None,
) -> UpstreamResponse:
    """Open the upstream answer for this call: the routing seam.

    The router (``routing/router.py``) tries targets per the route plan, with retries,
    fallback, load balancing, timeouts and circuit breaking, until one answers or the
    plan is spent. On return ``call.target`` is the target that answered and the
    response is a 2xx whose body has not been consumed by the caller; with ``parse``
    (non-streaming calls) its body has been read by the target's adapter in the attempt
    (see :func:`read_answer`).
    """
    resp = await gw.router.open(call, build, stream=stream, parse=parse)
    call.upstream_request_id = upstream_request_id(resp.headers)
    return resp


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


async def complete_chat(gw: Gateway, call: Call, body: dict[str, Any]) -> ChatResult:
    """A non-streaming chat call, answered in OpenAI's ``chat.completion`` shape.

    ``body`` is the OpenAI-shaped request (the ``/v1/messages`` and ``/v1/responses``
    endpoints translate theirs into it first, and translate the result back).
    """

    def build(t: Target) -> UpstreamCall:
        return t.provider.adapter.chat_request(t.provider.spec, t.body_for(body), t.model, False)

    def parse(t: Target, raw: bytes) -> ChatResult:
        return t.provider.adapter.chat_response(t.provider.spec, raw, t.model)

    resp = await open_routed(gw, call, build, stream=False, parse=parse)
    result = await read_answer(call, resp, parse)
    call.usage = result.usage
    call.finish_reason = result.finish_reason
    call.response_body = result.body
    return result


async def open_chat_stream(
    gw: Gateway, call: Call, body: dict[str, Any], *, client_wants_usage: bool | None = None
) -> tuple[UpstreamResponse, StreamTranslator]:
    """Open a streaming chat call; the translator yields OpenAI chunk events."""

    def build(t: Target) -> UpstreamCall:
        return t.provider.adapter.chat_request(t.provider.spec, t.body_for(body), t.model, True)

    resp = await open_routed(gw, call, build, stream=True)
    assert call.target is not None
    provider = call.target.provider
    wants = _wants_usage(body) if client_wants_usage is None else client_wants_usage
    return resp, provider.adapter.chat_stream(provider.spec, call.target.model, wants)


async def read_upstream(call: Call, resp: UpstreamResponse) -> bytes:
    t0 = time.perf_counter()
    try:
        return await resp.read()
    finally:
        call.upstream_seconds += time.perf_counter() - t0


async def read_answer(call: Call, resp: UpstreamResponse, parse: ParseAnswer) -> ChatResult:
    """The target's non-streamed answer, as its adapter read it.

    ``resp`` comes from ``open_routed(..., parse=parse)``: the router read the body with
    the adapter inside the attempt, so a 2xx that is not the provider's answer (not
    JSON, not its shape) failed that attempt like an error status would (recorded,
    retried or fallen back on per the route, a 502 ``upstream_invalid_response`` when
    nothing else answered), never a 200 relaying garbage.
    """
    assert call.target is not None
    answer = resp.answer if isinstance(resp, BufferedResponse) else None
    if answer is None:  # opened without ``parse``
        answer = parse(call.target, await read_upstream(call, resp))
    call.target.provider.state.ok()
    return answer


async def _wait_disconnect(call: Call) -> None:
    """Interrupt the call when its client hangs up (the body has been read by now)."""
    receive = call.request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.interrupt("client")  # a no-op once the answer is complete
            return


def stream_error_event(exc: GatewayError) -> bytes:
    return encode_json(exc.to_dict())


async def relay_stream(
    gw: Gateway,
    call: Call,
    resp: UpstreamResponse,
    translator: StreamTranslator,
    send: Send,
    *,
    error_event: Any = stream_error_event,
    encoder: OutputEncoder | None = None,
) -> None:
    """Relay a provider stream to the client as translated events arrive.

    Each upstream read is cut into whole events, translated, and sent in one write.
    A stream that breaks or stalls upstream ends with an error event and no ``[DONE]``,
    so clients can tell a cut stream from a finished one. Client disconnects and the
    shutdown deadline cancel this task through :meth:`Call.interrupt`. An ``encoder``
    re-encodes the OpenAI chunks for clients of another format (``/v1/messages``,
    ``/v1/responses``) and supplies their error event.
    """
    assert call.target is not None
    gw.streams.add(call)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": SSE_HEADERS + call.response_headers(),
        }
    )
    call.status = 200
    call.bytes_out = 1  # headers are out: errors from now on go in-band
    # SSE unless the adapter frames its stream otherwise (Bedrock's AWS event stream).
    splitter: FrameSplitter = call.target.provider.adapter.splitter(
        call.target.provider.spec, gw.settings.max_upstream_event_bytes)
    tail: list[bytes] = []
    if encoder is not None:
        error_event = encoder.error_event
    #: Translated but not yet sent: kept when a later event of the same read raises.
    out: list[bytes] = []
    watch = gw.governor.stream_watch(call)  # None unless a budget applies
    try:
        wait_started = time.perf_counter()
        async for chunk in resp.chunks():
            call.upstream_seconds += time.perf_counter() - wait_started
            for event in splitter.feed(chunk):
                events = translator.feed(event)
                out.extend(events if encoder is None else encode_all(encoder, events))
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out = []
                call.bytes_out += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if watch is not None and watch.over(translator):
                await watch.extend(translator)  # BudgetExceeded once no budget has room
            wait_started = time.perf_counter()
        final = translator.end()
        tail.extend(final if encoder is None else encode_all(encoder, final))
        if not translator.done:
            cut = UpstreamUnreachable(
                f"upstream {call.target.provider.name} closed the stream before it finished",
                provider=call.target.provider.name,
            )
            call.error = cut
            tail.append(error_event(cut))
    except BudgetExceeded as exc:  # stopped at the budget; the upstream is closed below
        call.error = exc
        call.status = exc.http_status  # the row says why, though the client saw 200
        tail.append(error_event(exc))
    except UpstreamError as exc:
        call.error = gw.router.redactor.error(exc)  # the upstream's words, minus secrets
        call.target.provider.state.failed(exc.message)
        tail.extend(out)
        tail.append(error_event(exc))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None:
            raise
        task.uncancel()
        ending = _interruption(call, "the stream was ended early")
        call.error = ending
        call.status = ending.http_status  # the row says why, though the client saw 200
        if call.interrupted == "shutdown":
            tail.append(error_event(ending))
    finally:
        resp.close()
        gw.streams.discard(call)
        call.usage = translator.usage
        call.content_chars = translator.content_chars
        call.finish_reason = translator.finish_reason
        if call.error is None and call.interrupted is None:
            call.target.provider.state.ok()
    if call.interrupted != "client":
        data = b"".join(tail)
        call.bytes_out += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": False})


async def respond_json(call: Call, send: Send, body: bytes, status: int = 200) -> None:
    call.status = status
    call.bytes_out = len(body)
    await send_bytes(send, status, body, call.response_headers())
