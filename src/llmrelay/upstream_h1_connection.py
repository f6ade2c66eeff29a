"""One upstream HTTP/1.1 connection: its httptools parser, the answer being read on it,
and :class:`H1Response`, the reader the router and the relay take that answer from.

:class:`Connection` is the ``asyncio.Protocol``: httptools calls it back with the status,
lower-cased headers and body pieces, which wait in a queue until the reader takes them.
Backpressure: above :data:`_PAUSE_ABOVE` bytes not yet taken the socket stops being read
(``pause_reading``), below :data:`_RESUME_BELOW` it is read again, so a client slower than
its upstream holds at most about that much per stream in the gateway; the rest waits in
the kernel's buffers and TCP's window, as it would with the client reading directly.

Waiting for the head or for more of the body: one future per wait, and one deadline per
connection behind one timer. A wait moves the deadline (``timeout`` from now); the timer,
armed once, checks on firing whether the deadline moved past it and is armed again for
the new one if so, else fails the wait with ``TimeoutError``. So a stream read for minutes
costs one timer every ``timeout`` seconds instead of a timeout object and a timer handle
per read (``asyncio.timeout``), and a pooled connection keeps its timer across calls. The
idle gap each wait may last is the same as before: ``timeout`` from its start.

How the pool sees a connection (:class:`Owner`): ``forget`` when it closes or is written
to while idle, ``put`` when an answer was read to its end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

import httptools

from llmrelay.errors import UpstreamResponseTooLarge, UpstreamTimeout, UpstreamUnreachable

_BROKE = (
    "the connection broke off in the middle of the answer (the upstream sent "
    "a truncated or malformed body)"
)

#: Body bytes received but not yet taken by the reader above which the socket stops being
#: read (``pause_reading``), and below which it is read again.
_PAUSE_ABOVE = 256 * 1024
_RESUME_BELOW = 64 * 1024


class Broken(Exception):
    """The connection ended or the parser refused the bytes: ``detail`` says which."""

    def __init__(self, detail: str, before_answer: bool) -> None:
        super().__init__(detail)
        self.before_answer = before_answer


class Owner(Protocol):
    """The pool a connection belongs to."""

    def forget(self, conn: Connection) -> None: ...

    def put(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read on it."""

    def __init__(self, pool: Owner) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle = False
        self.idle_since = 0.0
        self.paused = False
        #: Body pieces not yet taken; empty whenever the connection is pooled, so kept.
        self.pieces: deque[bytes] = deque()
        #: The one timer behind every wait on this connection, the time it is armed for
        #: and the deadline of the wait now (see the module's docstring).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.deadline = 0.0
        self.reset()

    def reset(self) -> None:
        """Ready for the next answer (a new connection, or one taken from the pool)."""
        self.status = 0
        #: A new dict per answer: the last answer's is still held by its readers.
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.answered = False  # the final head is in (or the whole message)
        self.buffered = 0  # bytes in ``pieces``
        if self.paused and self.transport is not None:
            self.transport.resume_reading()
        self.paused = False
        self.complete = False
        self.error: Broken | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.idle:  # nothing was asked: a 408 or garbage; the connection is not reusable
            self.abort()
            self.pool.forget(self)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the upstream switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"HttpParserError: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if not self.complete:
            if self.status and not self.headers.get("content-length") and not self.chunked():
                self.on_message_complete()  # a body delimited by the connection's end
            else:
                self._fail(f"ServerDisconnectedError: {exc or 'the connection was closed'}")
        self.pool.forget(self)

    # -- httptools callbacks ----------------------------------------------------------
    def on_status(self, _: bytes) -> None:
        self.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self.status = 0
            self.headers = {}
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.answered = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_ABOVE and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if not self.status:
            return  # the end of an interim 1xx message
        self.complete = True
        self.answered = True
        self._wake()

    # -- the reader's side ------------------------------------------------------------
    def take(self) -> bytes:
        """The oldest body piece, reading the socket again once the reader caught up."""
        piece = self.pieces.popleft()
        self.buffered -= len(piece)
        if self.paused and self.buffered < _RESUME_BELOW and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def wait(self, timeout: float) -> asyncio.Future[None]:
        """A future done at the next progress (head, body, end, failure), failed with
        ``TimeoutError`` if none comes within ``timeout`` seconds."""
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        deadline = self.deadline = loop.time() + timeout
        if self.timer is None or self.timer_at > deadline:
            if self.timer is not None:  # a shorter timeout than the last call's
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = loop.call_at(deadline, self._expire)
        return waiter

    def _expire(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms the timer again
        if self.deadline > self.timer_at:  # waits since the timer was armed moved it
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self._expire)
            return
        self.waiter = None
        waiter.set_exception(TimeoutError())

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- helpers ----------------------------------------------------------------------
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, detail: str) -> None:
        if self.error is None:
            self.error = Broken(detail, before_answer=not self.status)
        self.keep_alive = False
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.keep_alive = False
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()


class H1Response:
    """An answer being read from one pooled connection (the ``UpstreamResponse`` shape).

    ``chunks()`` is the response itself, an async iterator whose ``__anext__`` takes a
    piece straight from the connection's queue: one coroutine per read, where an async
    generator over a ``_next()`` coroutine cost two frames and an ``asend`` object.
    Iteration ending (the body's end, a failure, a timeout, a cancellation) closes it.
    """

    __slots__ = (
        "_conn",
        "_done",
        "_max_body",
        "_provider",
        "_timeout",
        "headers",
        "status",
    )

    def __init__(self, conn: Connection, provider: str, timeout: float, max_body: int) -> None:
        self._conn = conn
        self._provider = provider
        self._timeout = timeout
        self._max_body = max_body
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    async def read(self) -> bytes:
        conn = self._conn
        limit = self._max_body
        declared = conn.headers.get("content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise self._too_large(limit)
            parts: list[bytes] = []
            size = 0
            while True:
                if conn.pieces:
                    piece = conn.take()
                    size += len(piece)
                    if size > limit:
                        raise self._too_large(limit)
                    parts.append(piece)
                elif conn.error is not None:
                    raise UpstreamUnreachable(
                        f"upstream {self._provider} failed while sending its answer: {_BROKE}",
                        provider=self._provider,
                        detail=str(conn.error),
                    )
                elif conn.complete:
                    return parts[0] if len(parts) == 1 else b"".join(parts)
                else:
                    try:
                        await conn.wait(self._timeout)
                    except TimeoutError:
                        raise UpstreamTimeout(
                            f"upstream {self._provider} timed out after {self._timeout:g}s",
                            provider=self._provider,
                        ) from None
        finally:
            self.close()

    def _too_large(self, limit: int) -> UpstreamResponseTooLarge:
        return UpstreamResponseTooLarge(
            self._provider, "an answer", limit, "max_upstream_body_bytes"
        )

    def chunks(self) -> H1Response:
        return self

    def __aiter__(self) -> H1Response:
        return self

    async def __anext__(self) -> bytes:
        """The next body piece; waits at most the idle timeout for it."""
        conn = self._conn
        try:
            while True:
                if conn.pieces:
                    return conn.take()
                if conn.error is not None:
                    raise UpstreamUnreachable(
                        f"upstream {self._provider} broke off the stream: {_BROKE}",
                        provider=self._provider,
                        detail=str(conn.error),
                    )
                if conn.complete:
                    raise StopAsyncIteration
                try:
                    await conn.wait(self._timeout)
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"upstream {self._provider} stalled for more than "
                        f"{self._timeout:g}s mid-stream",
                        provider=self._provider,
                    ) from None
        except BaseException:  # the end, a failure, a cancellation: the read is over
            self.close()
            raise

    def close(self) -> None:
        """Back to the pool if the body was read to its end; else the connection goes."""
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and not conn.pieces:
            conn.pool.put(conn)
        else:
            conn.abort()
