"""uvicorn's httptools protocol with the limits it lacks: what a connection may hold.

uvicorn bounds neither the request head (httptools buffers a header of any size) nor
the time a client takes to send it: a client that dribbles a header byte every few
seconds holds a socket and its memory forever, and 20,000 of them exhaust the file
descriptors. This subclass adds, per connection:

* ``header_timeout``: the request line and headers must be complete this long after
  the connection opened (or, on a kept-alive connection, after the next request's
  first byte); else 408 (or a silent close if nothing at all was sent).
* ``max_header_bytes`` / ``max_headers``: a bigger head is refused with 431 as soon as
  it passes the limit, before it is buffered further.
* ``max_connections``: a connection accepted beyond it is answered 503 (``retry-after``)
  once its head is read, and closed; so is every request on it.

It also tells the application when a client's connection is lost, through the ASGI
extension :data:`llmrelay.asgi.DISCONNECT_EXTENSION` (a callback, instead of a task per
call waiting on ``receive``).

These answers are written by the protocol itself (no ASGI app runs), in the OpenAI
error shape, always with ``connection: close``. The keep-alive idle timeout is
uvicorn's own (``timeout_keep_alive``, set from ``keep_alive_timeout``).

Per request it is cheaper than uvicorn's (the server side is a fifth of a call's
instructions, ``bench/instructions.py --server``): the parser callbacks that uvicorn
and the limits both need are one call, not two, and the response head is checked for
bytes that are not allowed in a header with one regex search over all names and one
over all values (:class:`_Cycle`) instead of two searches per header, -~22k
instructions a call (bench/RESULTS.md). What is refused stays the same.
"""

from __future__ import annotations

import asyncio
import http
import resource
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from llmrelay.asgi import DISCONNECT_EXTENSION
from llmrelay.errors import (
    GatewayError,
    RequestHeadersTooLarge,
    RequestTimeout,
    ServiceUnavailable,
)

#: Descriptors kept for everything but client sockets (database, Redis, log files).
_RESERVED_FDS = 64
#: Seconds a refused connection is read (and discarded) after its answer before it is
#: closed: closing with unread request bytes makes the kernel send a reset, which can
#: destroy the answer before the client reads it (nginx's "lingering close").
_LINGER = 2.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_connections: int = 2048


def effective_max_connections(configured: int) -> int:
    """``configured``, lowered to what the descriptor limit can hold.

    Each client connection may hold an upstream connection too, so half of the
    descriptors left after a reserve go to clients: a limit the process cannot reach
    would protect nothing (accept fails with EMFILE first).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, (soft - _RESERVED_FDS) // 2))


class LimitedConfig(uvicorn.Config):
    """uvicorn's config carrying :class:`ConnectionLimits` to every worker's protocol
    (uvicorn pickles the config for its worker processes)."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http=LimitedHttpToolsProtocol, **kwargs)
        self.limits = limits


def _nothing() -> None:
    return None


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that is being refused."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection, with a bounded head and a bounded time to send it."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits if isinstance(config, LimitedConfig) else ConnectionLimits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._head_bytes = 0  # bytes received while the head was incomplete
        self._head_size = 0  # bytes of the url and headers parsed so far
        self._received_any = False
        self._over_capacity = False
        self._refusal: GatewayError | None = None
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None
        #: Callbacks of calls in flight on this connection (DISCONNECT_EXTENSION).
        self._on_lost: list[Callable[[], None]] = []
        self._lost = False
        #: When the connection last became idle (its answer done, nothing read since);
        #: None while a request is being read or served.
        self._idle_since: float | None = None
        self._extensions: dict[str, dict[object, object]] = {
            DISCONNECT_EXTENSION: {"watch": self._watch_disconnect}
        }

    # -- connection events ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The set includes this connection, which is the one over the limit.
        self._over_capacity = len(self.connections) > self.limits.max_connections
        self._begin_head()
        self._start_head_timer()  # a new connection's clock runs from the accept

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._idle_since = None
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)
        self._lost = True
        watching, self._on_lost = self._on_lost, []
        for callback in watching:
            callback()

    def _watch_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """DISCONNECT_EXTENSION's ``watch``: ``callback()`` once the connection is lost."""
        if self._lost:
            callback()
            return _nothing
        watching = self._on_lost
        watching.append(callback)

        def unwatch() -> None:
            if callback in watching:
                watching.remove(callback)

        return unwatch

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the refusals (its own would answer any of them with a 400)."""
        if self._refused:
            return  # lingering after a refusal: read and drop
        self._idle_since = None  # uvicorn's _unset_keepalive_if_required (see there)
        self._received_any = True
        counted = self._reading_head
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            self.logger.warning("Invalid HTTP request received.")  # as uvicorn: a 400
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if counted and self._reading_head:
            # Also counts a single huge header that httptools is still accumulating.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(self._too_large())
        if self._reading_head and self._head_timer is None and not self._refused:
            # The next request of a kept-alive connection began in this read and its head
            # is not complete: its clock runs from now. (Started here, not when parsing
            # began: a head that is complete within the read, nearly all of them, then
            # costs no timer to make and cancel.)
            self._start_head_timer()

    # -- the keep-alive timeout -----------------------------------------------------------
    # uvicorn makes a timer when an answer is complete and cancels it when the next
    # request's first bytes come: a timer made and cancelled per request. Here one timer
    # per connection is re-armed lazily: when it runs it closes the connection if it has
    # been idle for ``timeout_keep_alive`` since its last answer, else it is set again
    # for that moment (or not at all while a request is in progress; the answer's end
    # arms it again).
    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = now = self.loop.time()
        flow = self.flow
        if flow.read_paused:
            flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(
                now + self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return
        due = since + self.timeout_keep_alive
        if self.loop.time() + 0.001 >= due:  # (a timer may run a rounding early)
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(due, self._keep_alive_due)

    # -- parser callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        # One dict per connection: nothing writes to a scope's extensions.
        self.scope["extensions"] = self._extensions
        self._begin_head()

    # Called per header of every request: the size count is inlined, not a method call,
    # and so is uvicorn's own part (``self.url += url``; the header, lower-cased, kept).
    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_header_bytes:
            self._stop(self._too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.limits.max_header_bytes:
            self._stop(self._too_large())
        if len(self.headers) > self.limits.max_headers:
            self._stop(
                RequestHeadersTooLarge(
                    f"the request has more than {self.limits.max_headers} headers (max_headers)"
                )
            )

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._stop_head_timer()
        if self._over_capacity:
            self._stop(
                ServiceUnavailable(
                    f"the gateway is at its limit of {self.limits.max_connections} open "
                    "connections (max_connections); retry shortly",
                    code="too_many_connections",
                    headers={"retry-after": "1"},
                )
            )
        self._dispatch()

    def _dispatch(self) -> None:
        """uvicorn's ``on_headers_complete``, starting a :class:`_Cycle`."""
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = _Cycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # a pipelined request waits for the one before it
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    # -- the head's limits ----------------------------------------------------------------
    def _begin_head(self) -> None:
        self._reading_head = True
        self._head_bytes = self._head_size = 0

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if not self._received_any:
            self.transport.close()  # a connection that never spoke gets no answer
            return
        self._refuse(
            RequestTimeout(
                f"the request headers did not arrive within {self.limits.header_timeout:g}s "
                "(header_timeout)"
            )
        )

    def _too_large(self) -> RequestHeadersTooLarge:
        return RequestHeadersTooLarge(
            f"the request line and headers exceed {self.limits.max_header_bytes} bytes "
            "(max_header_bytes)"
        )

    def _stop(self, refusal: GatewayError) -> None:
        self._refusal = refusal
        raise _Refused(refusal.message)

    def _refuse(self, exc: GatewayError) -> None:
        """Answer ``exc`` in the OpenAI error shape and close the connection."""
        self._stop_head_timer()
        self._reading_head = False
        if self.transport.is_closing() or self._refused:
            return
        self._refused = True
        self.logger.warning("refused a request: %s", exc.message)
        body = exc.body()
        status = exc.status
        head = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
            *(f"{k.lower()}: {v}" for k, v in exc.headers.items()),
        ]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(_LINGER, self.transport.close)
        else:
            self.transport.close()


class _Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle, its ``send`` cheaper for the usual answer.

    The response head's names and values are checked with one search each over all of
    them joined (a byte that is not allowed in any one of them is found in the joined
    bytes, and joining adds none), not two searches per header. Anything unusual (an
    access log, a paused writer, a disconnected client, a message out of order) goes
    to uvicorn's own ``send``.
    """

    async def send(self, message: Any) -> None:
        if self.flow.write_paused or self.disconnected or self.access_log:
            return await super().send(message)
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                return await super().send(message)
            self._start(message)
            return None
        if self.response_complete or kind != "http.response.body":
            return await super().send(message)
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            if body:
                chunk = b"%x\r\n%b\r\n" % (len(body), body)
                self.transport.write(chunk + b"0\r\n\r\n" if not more_body else chunk)
            elif not more_body:
                self.transport.write(b"0\r\n\r\n")
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
        return None

    async def receive(self) -> Any:
        """uvicorn's ``receive``; a body that has already arrived is taken without
        waiting on the event (nearly every request's: it came with the head)."""
        event = self.message_event
        if (
            self.waiting_for_100_continue
            or self.disconnected
            or self.response_complete
            or not event.is_set()
        ):
            return await super().receive()
        flow = self.flow
        if flow.read_paused:
            flow.resume_reading()
        event.clear()
        message = {"type": "http.request", "body": bytes(self.body), "more_body": self.more_body}
        self.body = bytearray()
        return message

    def _start(self, message: Any) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        headers = message.get("headers", ())
        if self.default_headers:
            headers = self.default_headers + list(headers)
        if HEADER_RE.search(b"".join([n for n, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join([v for _, v in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))
