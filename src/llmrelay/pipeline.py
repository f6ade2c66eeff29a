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
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from llmrelay.asgi import SSE_HEADERS, ClientDisconnected, Send, send_bytes, send_error
from llmrelay.context import Call
from llmrelay.errors import (
    AuthenticationError,
    GatewayError,
    InternalError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
    UpstreamUnreachable,
)
from llmrelay.providers.base import ChatResult, FrameSplitter, StreamTranslator, UpstreamCall
from llmrelay.routing.resolve import Target, check_allowed
from llmrelay.sse import EventSplitter, encode_json
from llmrelay.stream_encoding import OutputEncoder, encode_all
from llmrelay.upstream import UpstreamResponse

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
    return body


async def run(gw: Gateway, call: Call, endpoint: Endpoint, send: Send) -> None:
    """Serve one model call end to end; never raises."""
    try:
        await authenticate(gw, call)
        call.raw_body = await call.request.body(gw.settings.max_body_bytes)
        call.body = parse_json(call.raw_body)
        call.model, call.stream = endpoint.validate(call.body)
        call.plan = await gw.router.plan_for(call)
        if call.plan is None:
            call.target = gw.resolver.resolve(call.model)
            assert call.key is not None
            # The target, by its own name or the requested name that resolved to it.
            check_allowed(call.key.allowed_models, call.target, (call.model,))
        await gw.governor.admit(call)  # rate limits + budget reservation (429 / 402)
        await endpoint.execute(gw, call, send)
    except GatewayError as exc:
        call.error = exc
        call.status = exc.http_status
        if call.bytes_out == 0:
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


#: Builds the provider request for one target (adapters differ per target). It must
#: build from ``target.body_for(body)`` so a route's ``override_params`` apply.
BuildCall = Callable[[Target], UpstreamCall]


async def open_routed(
    gw: Gateway, call: Call, build: BuildCall, *, stream: bool
) -> UpstreamResponse:
    """Open the upstream answer for this call: the routing seam.

    The router (``routing/router.py``) tries targets per the route plan, with retries,
    fallback, load balancing, timeouts and circuit breaking, until one answers or the
    plan is spent. On return ``call.target`` is the target that answered and the
    response is a 2xx whose body has not been consumed by the caller.
    """
    return await gw.router.open(call, build, stream=stream)


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

    resp = await open_routed(gw, call, build, stream=False)
    raw = await read_upstream(call, resp)
    assert call.target is not None
    provider = call.target.provider
    result = provider.adapter.chat_response(provider.spec, raw, call.target.model)
    provider.state.ok()
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


async def _wait_disconnect(call: Call) -> None:
    receive = call.request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.interrupt("client")
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
    call.task = asyncio.current_task()
    gw.streams.add(call)
    watcher = asyncio.create_task(_wait_disconnect(call))
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
    make_splitter = getattr(call.target.provider.adapter, "stream_splitter", None)
    splitter: FrameSplitter = (
        EventSplitter() if make_splitter is None else make_splitter(call.target.provider.spec)
    )
    tail: list[bytes] = []
    if encoder is not None:
        error_event = encoder.error_event
    #: Translated but not yet sent: kept when a later event of the same read raises.
    out: list[bytes] = []
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
    except UpstreamError as exc:
        call.error = exc
        call.target.provider.state.failed(exc.message)
        tail.extend(out)
        tail.append(error_event(exc))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if call.interrupted is None or task is None:
            raise
        task.uncancel()
        if call.interrupted == "shutdown":
            ending = ServiceUnavailable("the gateway is shutting down; the stream was ended early")
            call.error = ending
            tail.append(error_event(ending))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
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
