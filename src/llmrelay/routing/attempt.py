"""One try at one target, read up to its first byte, and the record of every try.

A non-streaming answer is read in full (and, given a ``parse``, read by the target's
adapter) and a stream's first chunk is read inside the attempt (under the target's
``ttft_timeout``), so a stall, an empty stream or a 2xx that is not the provider's
answer fails the try like an error status would, while fallback is still possible.

Each try, and each target passed over without one (its circuit open, its family unable
to serve the call), is appended to ``call.attempts``: a call's row is written only when
it holds an attempt, and every call that reached an upstream must leave one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmrelay.errors import (
    CapabilityMissing,
    DeadlineExceeded,
    GatewayError,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llmrelay.providers.base import ChatResult, UpstreamCall
from llmrelay.redaction import Redactor
from llmrelay.routing.classify import upstream_refusal
from llmrelay.routing.plan import Leaf
from llmrelay.routing.resolve import Target
from llmrelay.routing.responses import BufferedResponse, PrefetchedStream
from llmrelay.task_timer import TaskTimer
from llmrelay.telemetry.interaction import redact
from llmrelay.upstream import UpstreamResponse, upstream_request_id

if TYPE_CHECKING:
    from llmrelay.context import Call

log = logging.getLogger("llmrelay")

#: The adapter's reading of a target's 2xx body (``chat_response``, ...); raising
#: :class:`UpstreamError` makes the attempt fail like an error status would.
ParseAnswer = Callable[[Target, bytes], ChatResult]

#: What an adapter raises when a body's shape surprises it (a list where an object
#: belongs ...): the upstream's failure, like a body that is not JSON at all.
_SHAPE_ERRORS = (
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
    TypeError,
    ValueError,
)


async def attempt(
    call: Call,
    leaf: Leaf,
    ucall: UpstreamCall,
    *,
    stream: bool,
    parse: ParseAnswer | None,
    redactor: Redactor,
    remaining: float | None,
    waited: float,
) -> UpstreamResponse:
    """One try at one target, read up to the first byte; non-2xx is raised.

    ``redactor`` scrubs the failure when the target has no redactor of its own;
    ``remaining`` is what is left of the route's deadline, ``waited`` the backoff slept
    before this try (recorded as ``wait_ms``).
    """
    target = leaf.target
    provider = target.provider
    spec = provider.spec
    call.target = target
    timeout = leaf.spec.timeout or spec.timeout
    limit = timeout if remaining is None else min(timeout, remaining)
    ttft = leaf.spec.ttft_timeout if stream else None
    first_limit = limit if ttft is None else min(limit, ttft)
    entry: dict[str, Any] = {
        "provider": provider.name,
        "model": target.model,
        "at_ms": round((time.perf_counter() - call.started) * 1000, 1),
    }
    if waited:
        entry["wait_ms"] = round(waited * 1000, 1)
    if call.span is not None:  # tracing on: the attempt's span and traceparent
        call.span.attempt(entry, ucall)
    t0 = time.perf_counter()
    resp: UpstreamResponse | None = None
    timer = TaskTimer(first_limit)  # asyncio.timeout's work, cheaper (task_timer.py)
    try:
        try:
            resp = await provider.transport.send(
                ucall,
                provider=spec.name,
                # Streams: the idle gap allowed between chunks after the first.
                # Non-streams: a backstop; the timer above governs.
                timeout=timeout if stream else limit + 1,
                connect_timeout=min(spec.connect_timeout, first_limit),
                stream=stream,
            )
            if resp.status >= 400:
                body = await resp.read()
                # Kept for the error answer too: what to quote to the provider.
                call.upstream_request_id = upstream_request_id(resp.headers)
                raise provider.adapter.error(spec, resp.status, body, resp.headers)
            if stream:
                out: UpstreamResponse = await _first_chunk(resp, provider.name)
            else:
                body = await resp.read()
                out = BufferedResponse(
                    resp.status, resp.headers, body, _answer(parse, target, body)
                )
        except asyncio.CancelledError:
            if timer.fired():
                raise TimeoutError from None
            raise
        except BaseException:
            timer.ended_otherwise()
            raise
        finally:
            timer.cancel()
    except TimeoutError:
        if resp is not None:
            resp.close()
        error = _timeout_error(provider.name, first_limit, ttft, remaining)
        _record(call, entry, t0, error, redactor)
        raise error from None
    except UpstreamError as exc:
        if resp is not None:
            resp.close()
        # A refusal of llmrelay's own credentials (the provider's 401, or a token
        # that could not be minted) is not the client's; secrets are scrubbed before
        # the error is recorded, retried on or sent.
        failure = upstream_refusal((target.redactor or redactor).error(exc))
        _record(call, entry, t0, failure, redactor)
        if failure is exc:
            raise
        raise failure from exc
    except BaseException as exc:
        if resp is not None:
            resp.close()  # a cancelled call must not leave the upstream generating
        _record_ended(call, entry, t0, exc)
        raise
    _record(call, entry, t0, None, redactor)
    return out


def _answer(parse: ParseAnswer | None, target: Target, body: bytes) -> ChatResult | None:
    """The adapter's reading of a 2xx body; one that is not an answer fails the try."""
    if parse is None:
        return None
    try:
        return parse(target, body)
    except _SHAPE_ERRORS as exc:
        log.warning(
            "the answer of %s did not have the provider's shape",
            target.qualified,
            exc_info=True,
        )
        raise UpstreamInvalidResponse(
            target.provider.name,
            "a body that is not of the provider's answer shape",
        ) from exc


def _timeout_error(
    name: str, limit: float, ttft: float | None, remaining: float | None
) -> UpstreamTimeout:
    if remaining is not None and limit >= remaining:
        return DeadlineExceeded(
            f"the route's deadline ran out while waiting for {name}", provider=name
        )
    if ttft is not None and limit >= ttft:
        return UpstreamTimeout(
            f"upstream {name} sent no first byte within the ttft_timeout of {ttft:g}s",
            provider=name,
        )
    return UpstreamTimeout(f"upstream {name} timed out after {limit:g}s", provider=name)


def _record(
    call: Call,
    entry: dict[str, Any],
    t0: float,
    exc: UpstreamError | None,
    redactor: Redactor,
) -> None:
    took = time.perf_counter() - t0
    call.upstream_seconds += took
    entry["latency_ms"] = round(took * 1000, 1)
    if exc is None:
        entry["status"] = 200
    else:
        entry["status"] = exc.status
        entry["error"] = exc.code or exc.wire_type
        entry["message"] = redact(exc.message)[:300]
        if isinstance(exc, UpstreamUnreachable) and exc.detail:
            target = call.target
            scrub = (target.redactor if target else None) or redactor
            entry["detail"] = scrub.text(exc.detail)[:300]
    call.attempts.append(entry)


def _record_ended(call: Call, entry: dict[str, Any], t0: float, exc: BaseException) -> None:
    """Record a try ended from outside (client gone, shutdown) or by a bug of ours.

    It reached the upstream, so it is recorded like any other: a call's row is
    written only when it holds an attempt, and every call that reached an upstream
    must leave one.
    """
    took = time.perf_counter() - t0
    call.upstream_seconds += took
    entry["latency_ms"] = round(took * 1000, 1)
    if isinstance(exc, asyncio.CancelledError):
        # A cancellation nobody asked for through Call.interrupt is the server
        # stopping (uvicorn cancels what outlives its graceful timeout).
        client = call.interrupted == "client"
        entry["status"] = 499 if client else 503
        entry["error"] = "client_closed_request" if client else "shutting_down"
    elif isinstance(exc, GatewayError):
        entry["status"] = exc.status
        entry["error"] = exc.code or exc.wire_type
        entry["message"] = redact(exc.message)[:300]
    else:
        entry["status"] = 500
        entry["error"] = "internal_error"
        entry["message"] = type(exc).__name__
    call.attempts.append(entry)


def record_unsupported(call: Call, target: Target, exc: CapabilityMissing) -> None:
    """A target whose family cannot serve the call, passed over without an upstream call."""
    call.attempts.append(
        {
            "provider": target.provider.name,
            "model": target.model,
            "at_ms": round((time.perf_counter() - call.started) * 1000, 1),
            "skipped": "unsupported",
            "error": exc.code or exc.wire_type,
            "message": redact(exc.message)[:300],
        }
    )


def record_skip(call: Call, target: Target, state: str) -> None:
    """A target skipped because its circuit is ``state`` (open, or half-open and busy)."""
    call.attempts.append(
        {
            "provider": target.provider.name,
            "model": target.model,
            "at_ms": round((time.perf_counter() - call.started) * 1000, 1),
            "skipped": f"circuit_{state}",
        }
    )


async def _first_chunk(resp: UpstreamResponse, name: str) -> PrefetchedStream:
    chunks = resp.chunks()
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise UpstreamUnreachable(
            f"upstream {name} closed the stream before sending any data", provider=name
        ) from None
    return PrefetchedStream(resp, first, chunks)
