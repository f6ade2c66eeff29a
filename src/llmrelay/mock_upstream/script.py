"""Scripted behaviours and request recording, shared by every wire format.

Nothing in here knows about OpenAI, Anthropic or any other provider: a
:class:`Behaviour` says *how* the mock should misbehave (fail, stall, hang up
mid-stream ...), and the provider modules decide *what* the body looks like.
That split is what lets new wire formats reuse the same test knobs.

The module has two halves:

* plain data: :class:`Behaviour`, :class:`Script` (the FIFO of scripted
  behaviours), :class:`RecordedRequest` and :class:`RequestLog`.  These are
  touched both by the test thread and by the server's event-loop thread, so the
  two containers guard their lists with a lock.
* aiohttp helpers that *carry out* a behaviour on a live request
  (:func:`apply_preamble`, :func:`send_event_stream`, :func:`drop_connection`),
  so each provider's handlers stay short and behave identically.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from aiohttp import web

#: Request header that carries a per-request behaviour as a JSON object.  The
#: US spelling is accepted too because someone will type it.
BEHAVIOUR_HEADERS: tuple[str, ...] = ("x-mock-behaviour", "x-mock-behavior")


class BehaviourError(ValueError):
    """A behaviour description (header, control endpoint, dict) is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How the mock answers one request.  The default is a normal, fast reply.

    Fields that make no sense for an endpoint are ignored there (e.g. stream
    knobs on a non-stream request, ``reply`` on embeddings).
    """

    #: HTTP status.  200 is a normal answer; 400..599 returns the provider's
    #: error shape.
    status: int = 200
    #: Error text; ``None`` picks a realistic default for ``status``.
    error_message: str | None = None
    #: Error ``type`` / ``code`` overrides (e.g. ``insufficient_quota``,
    #: ``context_length_exceeded``); ``None`` picks the default for ``status``.
    error_type: str | None = None
    error_code: str | None = None
    #: Extra response headers (e.g. ``retry-after``), on success and on error.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Sleep before sending the response headers (simulates a slow upstream).
    delay_ms: float = 0
    #: Sleep between stream events (simulates slow token generation).
    chunk_delay_ms: float = 0
    #: Streams only: send this many events, then close the socket without the
    #: terminator (``[DONE]`` for OpenAI).  ``None`` means never drop.
    drop_after_chunks: int | None = None
    #: Streams only: send this many events, then the provider's in-stream error event
    #: (Anthropic's ``event: error``, the Responses API's ``error``) and end the
    #: stream; ``error_type`` / ``error_message`` pick the error (default: the
    #: provider's "overloaded" error). ``status`` stays 200: the stream has begun.
    #: Honoured by the wire formats that have such an event.
    error_after_chunks: int | None = None
    #: Reply text instead of the default (echo of the last user message).
    reply: str | None = None
    #: Close the socket without sending any response (after ``delay_ms``).
    close_connection: bool = False
    #: Keys merged over the computed usage block.
    usage: Mapping[str, Any] | None = None
    #: Answer with these bytes (UTF-8) instead of the provider's answer, with status
    #: 200: garbage, or JSON of the wrong shape. Sent ``raw_body_repeat`` times in a
    #: row, chunked (no ``content-length``) when repeated, for huge answers.
    raw_body: str | None = None
    raw_body_repeat: int = 1
    #: Streams only: send this many events, then break the chunked transfer encoding
    #: (a chunk header that is not a size) and close, as a faulty proxy would.
    corrupt_after_chunks: int | None = None

    @property
    def is_error(self) -> bool:
        """Whether this behaviour answers with an error status."""
        return self.status != 200

    @classmethod
    def from_dict(cls, data: object) -> Behaviour:
        """Build and validate a behaviour from decoded JSON.

        Strict on purpose: a typo in a test's behaviour should fail loudly
        instead of silently producing the default reply.
        """
        if not isinstance(data, Mapping):
            raise BehaviourError("a behaviour must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise BehaviourError(f"unknown behaviour field(s): {', '.join(unknown)}")
        return cls(
            status=_status(data.get("status", 200)),
            error_message=_opt_str(data, "error_message"),
            error_type=_opt_str(data, "error_type"),
            error_code=_opt_str(data, "error_code"),
            headers=_headers(data.get("headers")),
            delay_ms=_non_negative(data, "delay_ms"),
            chunk_delay_ms=_non_negative(data, "chunk_delay_ms"),
            drop_after_chunks=_opt_count(data, "drop_after_chunks"),
            error_after_chunks=_opt_count(data, "error_after_chunks"),
            reply=_opt_str(data, "reply"),
            close_connection=_bool(data, "close_connection"),
            usage=_opt_mapping(data, "usage"),
            raw_body=_opt_str(data, "raw_body"),
            raw_body_repeat=_opt_count(data, "raw_body_repeat") or 1,
            corrupt_after_chunks=_opt_count(data, "corrupt_after_chunks"),
        )

    @classmethod
    def coerce(cls, value: Behaviour | Mapping[str, Any]) -> Behaviour:
        """Accept either a ready :class:`Behaviour` or a dict of its fields."""
        if isinstance(value, Behaviour):
            return value
        return cls.from_dict(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``/_mock/script`` accepts)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out


def parse_behaviour_list(data: object) -> list[Behaviour]:
    """Parse the ``/_mock/script`` body: a list of behaviours (or just one)."""
    if isinstance(data, Mapping):
        return [Behaviour.from_dict(data)]
    if not isinstance(data, list):
        raise BehaviourError("expected a JSON list of behaviour objects")
    return [Behaviour.from_dict(item) for item in data]


def parse_behaviour_header(value: str) -> Behaviour:
    """Parse the JSON object carried by the ``x-mock-behaviour`` header."""
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BehaviourError(f"x-mock-behaviour is not valid JSON: {exc}") from exc
    return Behaviour.from_dict(decoded)


class Script:
    """Thread-safe FIFO of behaviours consumed by the next scripted requests.

    Tests push from their own thread while the server pops on its loop thread;
    hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Behaviour] = deque()

    def push(self, *behaviours: Behaviour) -> None:
        """Append behaviours; they are used in order, one per request."""
        with self._lock:
            self._queue.extend(behaviours)

    def pop(self) -> Behaviour | None:
        """Take the next behaviour, or ``None`` when the script is exhausted."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[Behaviour]:
        """Snapshot of behaviours not yet consumed."""
        with self._lock:
            return list(self._queue)

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def next_for(self, headers: Mapping[str, str], *, use_queue: bool = True) -> Behaviour:
        """Behaviour for one request: the header wins, else the queue, else default.

        A request carrying the header does *not* consume a queued behaviour, so
        request-driven and queued scripting can be mixed predictably.
        ``use_queue=False`` is for endpoints (like model listing) that only
        honour the header, so incidental calls do not eat the script.
        """
        for name in BEHAVIOUR_HEADERS:
            value = headers.get(name)
            if value is not None:
                return parse_behaviour_header(value)
        queued = self.pop() if use_queue else None
        return queued or Behaviour()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the mock received it, for assertions about the gateway."""

    method: str
    #: Path without the query string, e.g. ``/v1/chat/completions``.
    path: str
    #: Header names lower-cased; repeated headers joined with ``", "``.
    headers: dict[str, str]
    #: Decoded JSON body, or ``None`` if the body was empty or not JSON.
    body: Any
    query: dict[str, str] = field(default_factory=dict)
    raw_body: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form served by ``GET /_mock/requests``."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class Abort:
    """A request whose client (the gateway) hung up before the mock had answered."""

    path: str
    #: ``time.monotonic()`` when the mock saw the connection go: tests in the same
    #: process compare it with their own clock to check the upstream call was cut promptly.
    at: float


class RequestLog:
    """Thread-safe append-only list of :class:`RecordedRequest`, and of :class:`Abort`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []
        self._aborts: list[Abort] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        """A copy, so callers can iterate while the server keeps recording."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._aborts.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def abort(self, path: str) -> None:
        with self._lock:
            self._aborts.append(Abort(path, time.monotonic()))

    def aborts(self) -> list[Abort]:
        with self._lock:
            return list(self._aborts)


async def record_request(request: web.Request) -> RecordedRequest:
    """Capture method, path, lower-cased headers and the decoded JSON body."""
    raw = await request.read() if request.can_read_body else b""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body: Any = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
    return RecordedRequest(
        method=request.method,
        path=request.path,
        headers=headers,
        body=body,
        query=dict(request.query),
        raw_body=raw,
    )


async def send_raw_body(
    request: web.Request, behaviour: Behaviour, content_type: str
) -> web.StreamResponse:
    """Carry out ``raw_body``: the scripted bytes as a 200, chunked when repeated."""
    assert behaviour.raw_body is not None
    data = behaviour.raw_body.encode()
    if behaviour.raw_body_repeat <= 1:
        return web.Response(body=data, status=200, content_type=content_type)
    response = web.StreamResponse(status=200)
    response.content_type = content_type
    await response.prepare(request)
    for _ in range(behaviour.raw_body_repeat):
        await response.write(data)
    await response.write_eof()
    return response


def drop_connection(request: web.Request) -> None:
    """Close the client socket now, without a (complete) response.

    ``close`` (not ``abort``) so bytes already written still reach the client:
    a dropped stream must deliver its first N events before the hang-up.
    aiohttp then fails quietly (``ConnectionError``) when it tries to finish
    the response, which is exactly the "upstream died" situation we want.
    """
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.close()


async def apply_preamble(request: web.Request, behaviour: Behaviour) -> bool:
    """Do the part of a behaviour that happens before any byte is sent.

    Returns ``True`` when the connection was closed, in which case the handler
    should return :func:`closed_response` and send nothing else.
    """
    if behaviour.delay_ms > 0:
        await asyncio.sleep(behaviour.delay_ms / 1000)
    if behaviour.close_connection:
        drop_connection(request)
        return True
    return False


def closed_response() -> web.Response:
    """Placeholder returned after :func:`drop_connection`; never reaches the wire."""
    return web.Response(status=499)


async def send_event_stream(
    request: web.Request,
    events: Iterable[bytes],
    behaviour: Behaviour,
    *,
    terminator: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str = "text/event-stream",
) -> web.StreamResponse:
    """Write pre-encoded stream events, honouring the stream knobs.

    ``terminator`` (OpenAI's ``data: [DONE]``) is kept apart from ``events`` so
    ``drop_after_chunks`` can never let it through: a dropped stream must look
    truncated to the client.
    """
    response = web.StreamResponse(status=200, headers=dict(headers or {}))
    response.content_type = content_type
    response.charset = "utf-8"
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    # Flush the status line now: a stream dropped after 0 events must still
    # have sent its headers (the buffered headers would otherwise be lost).
    await response.write(b"")

    corrupt = behaviour.corrupt_after_chunks
    limit = behaviour.drop_after_chunks if corrupt is None else corrupt
    delay = behaviour.chunk_delay_ms / 1000
    to_send = events if limit is None else itertools.islice(events, limit)
    for index, event in enumerate(to_send):
        if index and delay > 0:
            await asyncio.sleep(delay)
        await response.write(event)
    if corrupt is not None and request.transport is not None:
        if delay > 0:
            await asyncio.sleep(delay)
        # Straight to the socket, past aiohttp's chunk framing: "zz" is no chunk size
        # (aiohttp's C parser used to leave a reader of such a body waiting forever).
        request.transport.write(b"zz\r\nnot a chunk\r\n")
    if limit is not None:
        drop_connection(request)
        return response
    if terminator is not None:
        if delay > 0:
            await asyncio.sleep(delay)
        await response.write(terminator)
    await response.write_eof()
    return response


# -- validation helpers ----------------------------------------------------------


def _status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BehaviourError("status must be an integer")
    if value != 200 and not 400 <= value <= 599:
        raise BehaviourError("status must be 200 or an error status in 400..599")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BehaviourError(f"{key} must be a string")
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise BehaviourError(f"{key} must be a boolean")
    return value


def _non_negative(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BehaviourError(f"{key} must be a non-negative number")
    return value


def _opt_count(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BehaviourError(f"{key} must be a non-negative integer")
    return value


def _opt_mapping(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BehaviourError(f"{key} must be an object")
    return dict(value)


def _headers(value: object) -> dict[str, str]:
    """Header values may be given as numbers (``{"retry-after": 1}``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BehaviourError("headers must be an object")
    out: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or isinstance(raw, bool | Mapping | list) or raw is None:
            raise BehaviourError("headers must map names to strings or numbers")
        out[name] = str(raw)
    return out
