"""A streamed answer, from the upstream's bytes to the client's events.

Per upstream read::

    bytes → frames (the family's splitter: SSE, AWS event stream)
          → internal events (the codec's translator: usage, finish, clean end tracked)
          → plug-in stream steps, innermost first (may rewrite, hold back, end)
          → the client's events (the codec's encoder) → one write

A stream that breaks or stalls upstream ends with an error event and no ``[DONE]``,
so clients can tell a cut stream from a finished one; a plug-in that ends it (the
budget guard) does the same with its own error. Client disconnects and the shutdown
deadline cancel the task through :meth:`Call.interrupt` and end here cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmrelay.api.codec import Codec
from llmrelay.asgi import SSE_HEADERS, Send
from llmrelay.context import Call
from llmrelay.errors import GatewayError, InternalError, UpstreamError, UpstreamUnreachable
from llmrelay.plugins.chain import Replay, StreamStep, run_stream_steps
from llmrelay.providers.base import FrameSplitter
from llmrelay.providers.openai_compat import OpenAIStreamRelay
from llmrelay.sse import EventSplitter
from llmrelay.stream_encoding import OutputEncoder, encode_all
from llmrelay.upstream import UpstreamResponse

if TYPE_CHECKING:
    from llmrelay.services import Services

log = logging.getLogger("llmrelay.stream")

#: The pipeline's finish step: the answer's headers.
Finish = Callable[["Services", Call, Codec], list[tuple[bytes, bytes]]]


async def _start(services: Services, call: Call, codec: Codec, send: Send, finish: Finish) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": SSE_HEADERS + finish(services, call, codec),
        }
    )
    call.status = 200
    call.bytes_out = 1  # headers are out: errors from now on go in-band


def _encode(encoder: OutputEncoder | None, events: list[bytes]) -> list[bytes]:
    return events if encoder is None else encode_all(encoder, events)


def read_block(
    splitter: EventSplitter, relay: OpenAIStreamRelay, chunk: bytes, events: list[bytes]
) -> list[bytes]:
    """One read of an OpenAI stream nothing rewrites: the whole events it completes,
    relayed. Several are parsed at once (``feed_block``, forwarded as the one piece they
    came in), one by one where that cannot be; a read that completes a single event (a
    stream trickling a token per read) goes to ``feed`` directly, which costs less than
    the block parse would (its joins, array and checks: ~3 % per call, bench/RESULTS.md,
    "Streams"). An event that raises leaves in ``events`` what was relayed before it."""
    whole = splitter.feed_block(chunk)
    if not whole:
        return events
    if whole.find(b"\n\n") == len(whole) - 2:
        events.extend(relay.feed(whole))
        return events
    passed = relay.feed_block(whole)
    if passed is not None:
        return passed
    for frame in splitter.split_block(whole):
        events.extend(relay.feed(frame))
    return events


async def relay_stream(
    services: Services,
    call: Call,
    codec: Codec,
    resp: UpstreamResponse,
    send: Send,
    finish: Finish,
) -> None:
    """Relay the answering target's stream to the client as translated events arrive."""
    target = call.target
    assert target is not None
    provider = target.provider
    translator = codec.translator(call, target)
    encoder = codec.encoder(call)
    error_event = codec.error_event if encoder is None else encoder.error_event
    steps: list[StreamStep] = call.chain.stream_steps(call)
    splitter: FrameSplitter = provider.adapter.splitter(
        provider.spec, services.settings.max_upstream_event_bytes
    )
    # An OpenAI stream nothing rewrites (no stream step, no encoder) is read a whole
    # read at a time: one parse for all its events, forwarded as the one piece they came
    # in (bench/RESULTS.md, "Streams"). Plug-ins that read events get them one by one.
    block: tuple[EventSplitter, OpenAIStreamRelay] | None = None
    if (
        not steps
        and encoder is None
        and isinstance(translator, OpenAIStreamRelay)
        and isinstance(splitter, EventSplitter)
    ):
        block = (splitter, translator)
    services.streams.add(call)
    await _start(services, call, codec, send, finish)
    #: What goes out with the last write: the end of the stream, or what a read
    #: translated before its upstream broke, then the error event.
    tail: list[bytes] = []
    try:
        wait_started = time.perf_counter()
        async for chunk in resp.chunks():
            call.upstream_seconds += time.perf_counter() - wait_started
            events: list[bytes] = []
            broken: UpstreamError | None = None
            try:
                if block is not None:
                    events = read_block(block[0], block[1], chunk, events)
                else:
                    for frame in splitter.feed(chunk):
                        events.extend(translator.feed(frame))
            except UpstreamError as exc:  # what this read translated before it still goes
                broken = exc
            stop: GatewayError | None = None
            if steps:
                call.usage, call.content_chars = translator.usage, translator.content_chars
                events, stop = await run_stream_steps(steps, call, events)
            data = b"".join(events if encoder is None else encode_all(encoder, events))
            if broken is not None:
                tail.append(data)
                raise broken
            if data:
                if not call.first_token_at:
                    call.first_token_at = time.perf_counter()
                call.bytes_out += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if stop is not None:
                raise stop  # after what the step let through; the upstream is closed below
            wait_started = time.perf_counter()
        final = translator.end()
        stop = None
        if steps:
            call.usage, call.content_chars = translator.usage, translator.content_chars
            final, stop = await run_stream_steps(steps, call, final, end=True)
        tail.extend(_encode(encoder, final))
        if stop is not None:
            raise stop
        if not translator.done:
            cut = UpstreamUnreachable(
                f"upstream {provider.name} closed the stream before it finished",
                provider=provider.name,
            )
            call.error = cut
            tail.append(error_event(cut))
    except UpstreamError as exc:
        # The upstream's words, minus secrets, for the client and for the row alike.
        bound = call.target.redactor if call.target is not None else None
        clean = (bound or services.router.redactor).error(exc)
        call.error = clean
        provider.state.failed(clean.message)
        tail.append(error_event(clean))
    except GatewayError as exc:  # a plug-in ended the stream (over budget, a guardrail)
        call.error = exc
        call.status = exc.status  # the row says why, though the client saw 200
        tail.append(error_event(exc))
    except Exception as exc:
        # A bug of ours or of a plug-in (an upstream's odd shape is an UpstreamError by
        # now): the stream still ends, with an error event the client can read, and the
        # row says so; a stream cut with no end would leave the client waiting for more.
        log.exception("stream relay failed for %s", call.request_id)
        failure = InternalError(
            f"the gateway failed while relaying the stream ({type(exc).__name__})"
        )
        call.error = failure
        call.status = failure.status
        tail.append(error_event(failure))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None:
            raise
        task.uncancel()
        ending = call.interruption("the stream was ended early")
        call.error = ending
        call.status = ending.status  # the row says why, though the client saw 200
        if call.interrupted == "shutdown":
            tail.append(error_event(ending))
    finally:
        resp.close()
        services.streams.discard(call)
        call.usage = translator.usage
        call.content_chars = translator.content_chars
        call.finish_reason = translator.finish_reason
        if call.error is None and call.interrupted is None:
            provider.state.ok()
    if call.interrupted != "client":
        data = b"".join(tail)
        call.bytes_out += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": False})


async def relay_replay(
    services: Services,
    call: Call,
    codec: Codec,
    replay: Replay,
    send: Send,
    finish: Finish,
) -> None:
    """A stream a plug-in answered (a cached stream): its events through the stream steps
    of the plug-ins around it and the codec's encoder, in one write."""
    encoder = codec.encoder(call)
    error_event = codec.error_event if encoder is None else encoder.error_event
    steps = call.chain.stream_steps(call)
    call.usage, call.finish_reason = replay.usage, replay.finish_reason
    await _start(services, call, codec, send, finish)
    events, stop = await run_stream_steps(steps, call, list(replay.events))
    out = _encode(encoder, events)
    if stop is None:
        final, stop = await run_stream_steps(steps, call, [], end=True)
        out.extend(_encode(encoder, final))
    if stop is not None:
        call.error = stop
        call.status = stop.status
        out.append(error_event(stop))
    data = b"".join(out)
    call.first_token_at = time.perf_counter()
    call.bytes_out += len(data)
    await send({"type": "http.response.body", "body": data, "more_body": False})
