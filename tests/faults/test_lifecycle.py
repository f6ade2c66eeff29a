"""The life of a call under faults: SIGTERM with calls in flight, clients that hang up,
and hostile connections (slow headers, huge headers, too many connections, idle ones).

Each test drives a real ``llmrelay serve`` process over loopback against the mock
upstream, which records when the gateway hangs up on it (``mock.aborts``). The tests of
the default configuration share one gateway (``default_gw``), each with a key of its
own whose rows are the only ones it reads; a test of a setting of its own (a timeout,
a limit) or one that stops the gateway starts its own.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

Start = Callable[..., GatewayProcess]

CHAT = {"model": "up/m", "messages": [{"role": "user", "content": "a b c d e f g h"}]}
MESSAGES = {
    "model": "up/m",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "a b c d e f g h"}],
}


def _config(upstream: MockUpstream, **config: Any) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "k",
            }
        ],
        **config,
    }


def _gateway(start_gateway: Start, upstream: MockUpstream, **config: Any) -> GatewayProcess:
    return start_gateway(_config(upstream, **config))


@pytest.fixture(scope="module")
def default_gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One gateway of the default configuration for the tests that need nothing else (a
    start and stop each cost seconds of the serial fault pass); each reads only the rows
    of its own key (:func:`_rows` with ``key_name``)."""
    gw = GatewayProcess(tmp_path_factory.mktemp("lifecycle"), _config(upstream)).start()
    yield gw
    gw.stop()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class _Client(threading.Thread):
    """One request on its own thread; keeps status, headers and the whole body."""

    def __init__(self, url: str, key: str, body: dict[str, Any], timeout: float = 60) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.body, self.timeout = url, key, body, timeout
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.content = b""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST",
                self.url,
                json=self.body,
                timeout=self.timeout,
                headers={"authorization": f"Bearer {self.key}"},
            ) as r:
                self.status, self.headers = r.status_code, dict(r.headers)
                for chunk in r.iter_bytes():
                    self.content += chunk
        except BaseException as exc:
            self.error = exc

    def json(self) -> Any:
        return orjson.loads(self.content)

    def events(self) -> list[str]:
        return [
            line.removeprefix("data: ")
            for line in self.content.decode().splitlines()
            if line.startswith("data: ")
        ]


def _of_key(key_name: str | None) -> str:
    """The SQL condition on ``requests r`` for the calls of one key (all calls: ``None``)."""
    if key_name is None:
        return ""
    return f" WHERE r.api_key_id = (SELECT id FROM api_keys WHERE name = '{key_name}')"


def _rows(gw: GatewayProcess, key_name: str | None = None) -> list[tuple[Any, ...]]:
    return gw.db_query(
        "SELECT r.route, r.stream, r.status_code, s.status_code, s.error_type, r.attempts "
        "FROM requests r JOIN responses s ON s.request_id = r.id"
        + _of_key(key_name)
        + " ORDER BY r.created_at"
    )


def _tokens(gw: GatewayProcess, key_name: str) -> list[tuple[Any, ...]]:
    return gw.db_query(
        "SELECT s.prompt_tokens, s.completion_tokens "
        "FROM requests r JOIN responses s ON s.request_id = r.id" + _of_key(key_name)
    )


# -- item 8: SIGTERM ----------------------------------------------------------------------


def test_sigterm_ends_every_call_in_its_endpoint_shape_and_keeps_its_row(
    start_gateway: Start, upstream: MockUpstream, mock: MockUpstream
) -> None:
    """SIGTERM, 4 calls in flight past the drain -> endpoint-shaped 503s, rows kept, new conn 503

    Chat, messages and two streams wait on an upstream slower than the drain: each ends
    with a 503 in its endpoint's shape (an error event mid-stream), a new connection
    during the drain gets the documented 503, and every call leaves its row.
    """
    gw = _gateway(start_gateway, upstream, drain_timeout=2.0, log_flush_interval=1.0)
    key = gw.create_key("drain")
    chat_url = gw.base_url + "/chat/completions"
    slow = Behaviour(delay_ms=30_000)
    plan = [
        ("chat", chat_url, CHAT, slow),
        ("messages", gw.base_url + "/messages", MESSAGES, slow),
        ("stream before first byte", chat_url, {**CHAT, "stream": True}, slow),
        ("stream mid-way", chat_url, {**CHAT, "stream": True}, Behaviour(chunk_delay_ms=1500)),
    ]
    clients: dict[str, _Client] = {}
    for name, url, body, behaviour in plan:
        mock.script(behaviour)  # consumed in arrival order: one call at a time
        seen = len(mock.requests)
        clients[name] = client = _Client(url, key, body)
        client.start()
        _wait_for(lambda seen=seen: len(mock.requests) > seen, 10, f"{name} upstream")
    _wait_for(lambda: clients["stream mid-way"].status == 200, 10, "the stream to start")

    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # A new connection during the drain: the documented 503, not a refused connection.
    with httpx.Client(timeout=10) as fresh:
        late = fresh.post(chat_url, json=CHAT, headers={"authorization": f"Bearer {key}"})
        health = fresh.get(gw.url + "/health")
    assert late.status_code == 503, late.text
    assert "shutting down" in late.json()["error"]["message"]
    assert late.headers["connection"] == "close"
    assert health.status_code == 503

    for client in clients.values():
        client.join(20)
        assert not client.is_alive()
    # (20 s: a hang guard; the clients' outcomes below show the drain cut the calls)
    assert gw.proc.wait(20) == 0

    chat = clients["chat"]
    assert chat.error is None and chat.status == 503, chat.content
    assert "shutting down" in chat.json()["error"]["message"]
    messages = clients["messages"]
    assert messages.error is None and messages.status == 503, messages.content
    assert messages.json()["type"] == "error"  # Anthropic's error shape
    assert "shutting down" in messages.json()["error"]["message"]
    early = clients["stream before first byte"]
    assert early.error is None and early.status == 503, early.content
    assert "shutting down" in early.json()["error"]["message"]
    cut = clients["stream mid-way"]
    assert cut.error is None and cut.status == 200
    events = cut.events()
    assert "[DONE]" not in events
    assert "shutting down" in orjson.loads(events[-1])["error"]["message"]
    assert b"Internal Server Error" not in b"".join(c.content for c in clients.values())

    # Every call that reached the upstream left its row, written before the exit.
    rows = _rows(GatewayProcess(gw.workdir, gw.config))
    assert len(rows) == 4, (rows, gw.logs())
    assert sorted(r[0] for r in rows) == ["/v1/chat/completions"] * 3 + ["/v1/messages"]
    assert {(r[2], r[3]) for r in rows} == {(503, 503)}
    for row in rows:
        attempts = orjson.loads(row[5]) if isinstance(row[5], str) else row[5]
        assert attempts and attempts[-1]["provider"] == "up"


# -- item 9: client disconnects ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "stream-before-first-byte"])
def test_client_disconnect_cancels_the_upstream_call_and_records_499(
    default_gw: GatewayProcess, mock: MockUpstream, stream: bool
) -> None:
    """Client hangs up before the first byte -> upstream call cancelled at once, row 499

    During a non-streamed call, or before a stream's first byte: the gateway closes the
    upstream connection within seconds (not after its 20 s answer), and bills nothing.
    """
    gw = default_gw
    name = f"gone-{'stream' if stream else 'plain'}"
    key = gw.create_key(name)
    mock.script(Behaviour(delay_ms=20_000))
    client = _Client(
        gw.base_url + "/chat/completions", key, {**CHAT, "stream": stream}, timeout=1.5
    )
    client.start()
    client.join(10)
    assert isinstance(client.error, httpx.ReadTimeout)  # the client gave up and hung up
    # Awaited 6 s at most (a hang guard) after a hang-up at 1.5 s, well before the 20 s
    # answer: an abort seen here came from the hang-up, so it needs no timing.
    _wait_for(lambda: bool(mock.aborts), 6, "the upstream call to be cancelled")
    _wait_for(lambda: bool(_rows(gw, name)), 10, "the row")
    ((route, streamed, status, response_status, error_type, attempts),) = _rows(gw, name)
    assert (route, bool(streamed), status, response_status) == (
        "/v1/chat/completions",
        stream,
        499,
        499,
    )
    assert error_type == "client_closed_request"
    attempts = orjson.loads(attempts) if isinstance(attempts, str) else attempts
    assert [a["status"] for a in attempts] == [499]
    # Nothing was delivered and the upstream reported nothing: nothing is billed.
    assert _tokens(gw, name) == [(0, 0)]


# -- item 14: what a connection may hold --------------------------------------------------


def _connect(gw: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, guard: float) -> bytes:
    """Everything the server sends until it closes the connection; not closing within
    ``guard`` seconds (a hang guard, far above the bound under test) fails the test."""
    sock.settimeout(guard)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the gateway kept the connection open {guard}s") from None
    return data


def _answer(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, orjson.loads(body) if body else None


def test_slow_headers_are_cut_off_while_normal_clients_are_served(
    start_gateway: Start, upstream: MockUpstream, mock: MockUpstream
) -> None:
    """Slowloris: 200 connections dribbling headers -> each closed at header_timeout, others 200

    Dribbling a byte at a time does not extend the deadline; a connection that never
    sends anything is closed without an answer; a normal client is served meanwhile.
    """
    gw = _gateway(start_gateway, upstream, header_timeout=1.5)
    key = gw.create_key("normal")
    slow = [_connect(gw) for _ in range(200)]
    silent = _connect(gw)
    for sock in slow:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    # Dribble one header byte per connection while a normal client is served.
    for _ in range(2):
        for sock in slow:
            try:
                sock.sendall(b"x")
            except OSError:
                pass
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json=CHAT,
            timeout=30,
            headers={"authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200
        time.sleep(0.3)
    # Closed by the gateway (each read fails if it is not: no timing of the close).
    answers = [_read_until_closed(sock, 15) for sock in slow]
    for raw in answers:
        status, headers, body = _answer(raw)
        assert status == 408 and headers["connection"] == "close"
        assert body["error"]["code"] == "request_timeout"
    assert _read_until_closed(silent, 10) == b""
    for sock in [*slow, silent]:
        sock.close()


def test_a_slow_head_on_a_kept_alive_connection_is_cut_off_too(
    start_gateway: Start, upstream: MockUpstream
) -> None:
    """An answered request, then the next head dribbled on the same connection -> 408

    The clock of a kept-alive connection's next head starts with its first bytes (the
    protocol starts that timer only for a head still incomplete after a read).
    """
    gw = _gateway(start_gateway, upstream, header_timeout=1.5)
    sock = _connect(gw)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first:
        first += sock.recv(65536)
    status, headers, _ = _answer(first.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")
    assert status == 200 and headers.get("connection") != "close"
    length = int(headers["content-length"])
    while len(first.partition(b"\r\n\r\n")[2]) < length:
        first += sock.recv(65536)
    started = time.monotonic()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    for _ in range(3):  # dribbling does not extend the deadline
        time.sleep(0.3)
        sock.sendall(b"x")
    status, headers, body = _answer(_read_until_closed(sock, 15))
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "request_timeout"
    assert 1.4 <= time.monotonic() - started < 10
    sock.close()


def test_oversized_and_too_many_headers_are_refused_with_431(default_gw: GatewayProcess) -> None:
    """A 40 KiB header / 150 headers -> 431 in the OpenAI error shape, at once, conn closed"""
    gw = default_gw
    big = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 40_000
    many = (
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"x-h%d: v\r\n" % i for i in range(150))
        + b"\r\n"
    )
    for request in (big, many):
        sock = _connect(gw)
        sock.sendall(request)  # the big one never ends its head: refused by size alone
        raw = _read_until_closed(sock, 10)
        sock.close()
        status, headers, body = _answer(raw)
        # (not a 408 at the 10 s header_timeout: refused at once, by size)
        assert status == 431, raw[:200]
        assert headers["connection"] == "close"
        assert body["error"]["code"] == "request_headers_too_large"
    assert httpx.get(gw.url + "/health").status_code == 200  # the server is unharmed


def test_connections_beyond_the_limit_get_a_clean_503(
    start_gateway: Start, upstream: MockUpstream
) -> None:
    """Connections beyond max_connections -> 503 JSON with retry-after; served again after"""
    gw = _gateway(start_gateway, upstream, max_connections=30)
    time.sleep(0.5)  # the start-up health checks' connections are gone
    held = [_connect(gw) for _ in range(30)]
    time.sleep(0.3)
    with httpx.Client(timeout=10) as client:
        r = client.get(gw.url + "/health")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "too_many_connections"
    assert r.headers["retry-after"] == "1" and r.headers["connection"] == "close"
    for sock in held:
        sock.close()
    _wait_for(
        lambda: httpx.get(gw.url + "/health", timeout=10).status_code == 200,
        10,
        "the gateway to serve again",
    )


def test_idle_keep_alive_connections_are_closed_after_the_timeout(
    start_gateway: Start, upstream: MockUpstream
) -> None:
    """A kept-alive connection left idle -> closed by the gateway after keep_alive_timeout"""
    gw = _gateway(start_gateway, upstream, keep_alive_timeout=1.0)
    sock = _connect(gw)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(10)
    first = b""
    while not first.endswith(b"OK"):  # the whole answer: head, then its 2-byte body
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    # Closed by the gateway (1 s here; its default is 75 s): a read that times out at
    # the 15 s hang guard fails, so the close needs no timing.
    rest = _read_until_closed(sock, 15)
    sock.close()
    assert rest == b""


def test_answered_calls_are_never_taken_for_disconnects(
    default_gw: GatewayProcess, mock: MockUpstream
) -> None:
    """30 answered calls on one kept-alive connection -> 30 rows of 200, no upstream cut

    uvicorn reports a finished response to ``receive`` as a disconnect; the watcher
    must not turn that into a 499 (or cancel the call while it settles).
    """
    gw = default_gw
    key = gw.create_key("fine")
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
        for i in range(30):
            r = client.post(gw.base_url + "/chat/completions", json={**CHAT, "stream": i % 2 == 1})
            assert r.status_code == 200
    _wait_for(lambda: len(_rows(gw, "fine")) == 30, 20, "30 rows")
    assert {(r[2], r[3], r[4]) for r in _rows(gw, "fine")} == {(200, 200, None)}
    assert mock.aborts == []


def test_client_disconnect_mid_stream_stops_the_upstream_and_bills_what_was_delivered(
    default_gw: GatewayProcess, mock: MockUpstream
) -> None:
    """Client hangs up mid-stream -> upstream stream closed at once, row 499, delivered billed"""
    gw = default_gw
    key = gw.create_key("gone-mid-way")
    # ~20 s of words: the abort, awaited 6 s at most (a hang guard), can only come
    # from the hang-up, not from the stream's end, so it needs no timing.
    mock.script(Behaviour(chunk_delay_ms=1000, reply=" ".join(["word"] * 20)))
    with httpx.stream(
        "POST",
        gw.base_url + "/chat/completions",
        timeout=30,
        json={**CHAT, "stream": True},
        headers={"authorization": f"Bearer {key}"},
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # one word delivered: hang up
    _wait_for(lambda: bool(mock.aborts), 6, "the upstream stream to be closed")
    _wait_for(lambda: bool(_rows(gw, "gone-mid-way")), 10, "the row")
    ((_, streamed, status, response_status, error_type, _),) = _rows(gw, "gone-mid-way")
    assert (bool(streamed), status, response_status, error_type) == (
        True,
        499,
        499,
        "client_closed_request",
    )
    ((prompt, completion),) = _tokens(gw, "gone-mid-way")
    assert prompt > 0 and 0 < completion < 7  # estimated from what was delivered


def test_a_body_sent_too_slowly_is_refused_with_408(
    start_gateway: Start, upstream: MockUpstream, mock: MockUpstream
) -> None:
    """A model call whose body trickles in past body_timeout -> 408, closed, no upstream call"""
    gw = _gateway(start_gateway, upstream, body_timeout=1.5)
    key = gw.create_key("slow-body")
    body = orjson.dumps(CHAT)
    sock = _connect(gw)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body[:10]
    )
    raw = _read_until_closed(sock, 15)
    sock.close()
    status, headers, answer = _answer(raw)
    assert status == 408 and headers["connection"] == "close"
    assert answer["error"]["code"] == "request_timeout"
    assert not mock.requests
