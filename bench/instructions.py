"""Instructions per request on the relay's hot path: one deterministic number per change.

    .venv/bin/python bench/instructions.py                   # non-stream, callgrind
    .venv/bin/python bench/instructions.py --stream          # the 21-event SSE answer
    .venv/bin/python bench/instructions.py --tls             # the upstream on https://
    .venv/bin/python bench/instructions.py --stream --trickle 10 --n 100   # one event per read
    .venv/bin/python bench/instructions.py --tls --client aiohttp   # https on aiohttp, as before
    .venv/bin/python bench/instructions.py --profile         # cProfile: calls per request + top
    .venv/bin/python bench/instructions.py --server          # + the HTTP server side (socket)
    .venv/bin/python bench/instructions.py --count none      # just run it (wall time, no counts)

Wall-clock timings on a shared 2-core machine are noise; the number of machine
instructions a fixed workload executes is not (±0.5 % between runs). The gateway is
built in this process exactly as ``llmrelay serve`` builds it from ``bench/config.yaml``
(one OpenAI-compatible provider, interaction logging on to a file, SQLite rows written by
the batch writer), on uvloop as under uvicorn, and driven through its ASGI entry with a
scope like uvicorn's. The upstream is a tiny raw-socket HTTP/1.1 server in a **child
process** answering the bytes of the peers harness's nginx mock (the same JSON, the same
21-event SSE stream, content-length bodies, keep-alive), so its work is not counted: what
is counted is the gateway's own work per call (pipeline, upstream client, relay, the log
writer's threads), not uvicorn's HTTP server side, which is outside llmrelay's code.

Under ``--count callgrind`` the script runs itself under ``valgrind --tool=callgrind
--instr-atstart=no`` and switches instrumentation on (``callgrind_control -i on``) after
start-up and a warm-up, and off after the measured calls, so import and start-up are not
counted; the printed figure is the instructions of all the process's threads between the
two switches divided by the number of calls, with the event loop's thread alone beside it
(the rest is the SQLite writer threads). Calls run ``--concurrency`` at a time (default 1:
sequential, the most repeatable).

``--server`` puts llmrelay's HTTP server in front as ``llmrelay serve`` does (uvicorn's
httptools protocol with the head limits of :mod:`llmrelay.http_protocol`) on a loopback
socket, called over one kept-alive connection by a client in another child process: the
count then includes parsing the request and writing the answer, which the default ASGI
entry leaves out.

``--tls`` serves the child upstream over TLS (a throwaway CA from
:mod:`llmrelay.mock_upstream.tls`, trusted through ``SSL_CERT_FILE`` as an operator's own
CA would be) and points the provider at ``https://127.0.0.1``: every real provider's
path. The connection is kept alive, so what is counted is TLS record encryption per call,
not handshakes (those happen in the warm-up).

``--trickle MS`` sends the SSE answer as a real model does, one event at a time: the head
and the first event, then each further event ``MS`` ms after the last, so each upstream
read holds one event (the per-read cost of the client and the relay, which the whole
answer in one read hardly shows). Pick ``MS`` well above callgrind's time per read (10 ms
is); the idle loop between events is counted too, the same in every run at one ``MS``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CHAT_JSON = (
    b'{"id":"chatcmpl-mock0001","object":"chat.completion","created":1700000000,'
    b'"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?","refusal":null},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,'
    b'"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
    b'"service_tier":"default","system_fingerprint":"fp_mock"}'
)

_CHUNK = (
    b'data: {"id":"chatcmpl-mock0002","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_mock",'
    b'"choices":[%s]}\n\n'
)
_WORDS = [
    "Hello", "!", " How", " can", " I", " help", " you", " today", "?", " This", " is",
    " a", " mock", " stream", " from", " nginx", " for", " benchmarks",
]  # fmt: skip
CHAT_SSE = b"".join(
    [
        _CHUNK
        % b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}',
        *(
            _CHUNK
            % (
                b'{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":null}'
                % w.encode()
            )
            for w in _WORDS
        ),
        _CHUNK % b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}',
        _CHUNK.replace(b"[%s]}", b'[],"usage":{"prompt_tokens":9,"completion_tokens":18,'
                       b'"total_tokens":27}}'),
        b"data: [DONE]\n\n",
    ]
)  # fmt: skip


# -- the upstream (child process) ---------------------------------------------------


def _response(content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nServer: mock\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Connection: keep-alive\r\n\r\n%s" % (content_type, len(body), body)
    )


class _Upstream(asyncio.Protocol):
    JSON = _response(b"application/json", CHAT_JSON)
    SSE = _response(b"text/event-stream", CHAT_SSE)
    #: ``--trickle``: seconds between events (0: the whole answer in one write).
    TRICKLE = 0.0
    EVENTS = [e + b"\n\n" for e in CHAT_SSE.split(b"\n\n")[:-1]]
    MODELS = _response(
        b"application/json",
        b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","owned_by":"mock"}]}',
    )

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            m = re.search(rb"content-length:\s*(\d+)", head)
            length = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            if head.startswith(b"get "):
                self.transport.write(self.MODELS)
            elif re.search(rb'"stream"\s*:\s*true', body):
                if self.TRICKLE:
                    self._trickle(len(self.SSE) - len(CHAT_SSE) + len(self.EVENTS[0]), 1)
                else:
                    self.transport.write(self.SSE)
            else:
                self.transport.write(self.JSON)

    def _trickle(self, upto: int, i: int) -> None:
        """The answer's head and first event (``upto`` bytes), then one event a step."""
        if i == 1:
            self.transport.write(self.SSE[:upto])
        else:
            self.transport.write(self.EVENTS[i - 1])
        if i < len(self.EVENTS):
            asyncio.get_running_loop().call_later(self.TRICKLE, self._trickle, 0, i + 1)


def serve_upstream(port: int, tls_dir: str | None, trickle_ms: float = 0.0) -> None:
    _Upstream.TRICKLE = trickle_ms / 1000
    ctx = None
    if tls_dir:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(Path(tls_dir) / "cert.pem", Path(tls_dir) / "key.pem")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=1024, ssl=ctx)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


# -- the client of --server (child process) ------------------------------------------


def _read_answer(sock: Any, buf: bytes, stream: bool) -> bytes:
    """One whole response off the keep-alive connection; the bytes after it."""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    end = buf.index(b"\r\n\r\n") + 4
    head = buf[:end].lower()
    if not head.startswith(b"http/1.1 200"):
        raise SystemExit(f"bad answer: {buf[:300]!r}")
    m = re.search(rb"content-length:\s*(\d+)", head)
    if m:  # a whole JSON answer
        length = int(m.group(1))
        while len(buf) < end + length:
            buf += sock.recv(65536)
        return buf[end + length :]
    while not buf.endswith(b"\r\n0\r\n\r\n"):  # chunked: the stream's last chunk
        buf += sock.recv(65536)
    if stream and b"data: [DONE]" not in buf:
        raise SystemExit(f"stream without [DONE]: {buf[-300:]!r}")
    return b""


def serve_client(port: int, key: str, stream: bool) -> None:
    """``--server``'s client: on each line ``n`` from stdin, ``n`` sequential calls on one
    kept-alive connection, then ``done`` on stdout (its work is not counted)."""
    import socket

    body = _body(stream)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n"
        b"authorization: Bearer %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (key.encode(), len(body), body)
    )
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for line in sys.stdin:
        for _ in range(int(line)):
            sock.sendall(request)
            buf = _read_answer(sock, buf, stream)
        print("done", flush=True)


# -- the gateway (this process) -----------------------------------------------------


class _Client:
    """One ASGI call the way uvicorn drives it: the body, then ``http.disconnect`` once
    the response is complete; and, as llmrelay's own protocol does (``http_protocol.py``),
    the disconnect extension, so the pipeline takes the path it takes under
    ``llmrelay serve`` (a callback for a lost connection, which never comes here)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent_body = False
        self.done = asyncio.Event()
        self.status = 0
        self.out: list[bytes] = []
        self.extensions = {"llmrelay.disconnect": {"watch": self.watch}}

    def watch(self, callback: Any) -> Any:
        return self.unwatch

    def unwatch(self) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.out.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.done.set()


def _scope(key: str, length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
        "state": {},
    }


async def _one(app: Any, key: str, body: bytes, stream: bool) -> None:
    client = _Client(body)
    scope = _scope(key, len(body))
    scope["extensions"] = client.extensions
    await app(scope, client.receive, client.send)
    out = b"".join(client.out)
    if client.status != 200 or (stream and not out.endswith(b"data: [DONE]\n\n")):
        raise SystemExit(f"bad answer {client.status}: {out[:300]!r}")


def _body(stream: bool) -> bytes:
    return (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],'
        b'"max_tokens":16%s}' % (b',"stream":true' if stream else b"")
    )


class _Served:
    """``--server``: the gateway behind llmrelay's uvicorn protocol (``http_protocol.py``)
    on a loopback socket, called by a client in a child process, so the server side of
    HTTP (httptools parsing, uvicorn's request cycle, the head limits) is counted too."""

    def __init__(self, gateway: Any, key: str, stream: bool) -> None:
        self.gateway = gateway
        self.key = key
        self.stream = stream

    async def start(self) -> None:
        from uvicorn.server import ServerState

        from llmrelay.http_protocol import (
            ConnectionLimits,
            LimitedConfig,
            LimitedHttpToolsProtocol,
        )

        config = LimitedConfig(
            self.gateway,
            limits=ConnectionLimits(),
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=3600,  # callgrind's toggles take seconds
        )
        config.load()
        state = ServerState()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: LimitedHttpToolsProtocol(config, state, {}, loop), "127.0.0.1", 0
        )
        port = self.server.sockets[0].getsockname()[1]
        argv = [sys.executable, __file__, "--client-of", str(port), "--client-key", self.key]
        self.client = await asyncio.create_subprocess_exec(
            *argv,
            *(["--stream"] if self.stream else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def batch(self, n: int) -> None:
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(b"%d\n" % n)
        await self.client.stdin.drain()
        if (await self.client.stdout.readline()).strip() != b"done":
            raise SystemExit("the client of --server failed")

    async def close(self) -> None:
        assert self.client.stdin is not None
        self.client.stdin.close()
        await self.client.wait()
        self.server.close()


async def _batch(
    app: Any,
    key: str,
    body: bytes,
    stream: bool,
    n: int,
    conc: int,
    clock: _WriterClock | None = None,
) -> None:
    left = n
    done = 0

    async def worker() -> None:
        nonlocal left, done
        while left > 0:
            left -= 1
            await _one(app, key, body, stream)
            done += 1
            if clock is not None:
                clock.call_done(done)

    await asyncio.gather(*(worker() for _ in range(conc)))


#: The writer's two waits under ``--writer``: seconds no real run uses, recognised by
#: the bench's sleep and ended by call counts instead of time.
_SPOOL_WAIT, _FLUSH_WAIT = 1000.0, 1001.0


class _WriterClock:
    """Drives the log writer's timers by calls instead of seconds, so ``--writer``
    counts are deterministic: its spool step runs every ``spool_every`` calls (500
    calls/s at the 50 ms ``log_spool_interval``: 25) and its database batch every
    ``write_every`` calls (the 0.2 s ``log_flush_interval``: 100). Timer-driven, the
    batches' size depended on how fast the machine ran the calls (±10 % and more)."""

    def __init__(self, spool_every: int, write_every: int) -> None:
        self.spool_every = spool_every
        self.write_every = write_every
        self.waiting: dict[float, list[asyncio.Future[None]]] = {
            _SPOOL_WAIT: [],
            _FLUSH_WAIT: [],
        }
        self._sleep = asyncio.sleep

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if delay not in self.waiting:
            return await self._sleep(delay, result)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[delay].append(fut)
        await fut
        return result

    def release(self, which: float) -> None:
        futures, self.waiting[which] = self.waiting[which], []
        for fut in futures:
            if not fut.done():
                fut.set_result(None)

    def release_all(self) -> None:
        self.release(_SPOOL_WAIT)
        self.release(_FLUSH_WAIT)

    def call_done(self, done: int) -> None:
        if done % self.spool_every == 0:
            self.release(_SPOOL_WAIT)
        # Half-way between two spool steps, so the last one has finished (its slices
        # yield) and a batch holds exactly the rows spooled by then.
        if done % self.write_every == self.spool_every // 2:
            self.release(_FLUSH_WAIT)

    def install(self) -> None:
        """The writer module's ``asyncio.sleep`` becomes this clock's (only there)."""
        import types

        from llmrelay.store import writer as writer_module

        shim = types.ModuleType("asyncio")
        shim.__dict__.update(asyncio.__dict__)
        shim.sleep = self.sleep  # type: ignore[attr-defined]
        writer_module.asyncio = shim  # type: ignore[attr-defined]


async def _toggle(on: bool) -> None:
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control",
        "-i",
        "on" if on else "off",
        str(os.getpid()),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


async def _drained(gateway: Any, clock: _WriterClock | None) -> None:
    writer = gateway.services.writer
    for _ in range(3000):
        if clock is not None:
            clock.release_all()
        if writer.pending == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the batch just taken off the queue


async def gateway_run(args: argparse.Namespace, port: int, workdir: Path) -> None:
    from llmrelay.app import Gateway
    from llmrelay.config import load_settings
    from llmrelay.governance.keys import create_key

    writer: dict[str, float] = {}
    clock: _WriterClock | None = None
    if not args.writer:  # rows wait in the writer's queue until the end, uncounted
        writer = {"log_flush_interval": 3600.0, "log_spool_interval": 3600.0}
    else:  # batches by call counts (see _WriterClock), whatever the machine's speed
        writer = {"log_flush_interval": _FLUSH_WAIT, "log_spool_interval": _SPOOL_WAIT}
        clock = _WriterClock(args.spool_every, args.write_every)
        clock.install()
    settings = load_settings(
        HERE / "config.yaml",
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "log_file": str(workdir / "interactions.log"),
            **writer,
            # Refreshed once per second of wall time (one database read each): under
            # callgrind's slowdown that was a refresh every few calls, and a count that
            # followed the machine's load; at real rates it is nothing per call.
            "key_cache_ttl": 3600.0,
            "routing": {"config_cache_ttl": 3600.0},
            "providers": [
                {
                    "name": "bench",
                    "type": "openai_compatible",
                    "base_url": f"{'https' if args.tls_dir else 'http'}://127.0.0.1:{port}/v1",
                    "api_key": "dummy",
                }
            ],
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    gateway.services.http.aiohttp_for_https = args.client == "aiohttp"
    key, _ = await create_key(gateway.services.sessions, "bench")
    body = _body(args.stream)
    served: _Served | None = None
    if args.server:
        served = _Served(gateway, key, args.stream)
        await served.start()
        await served.batch(args.warmup)
    else:
        await _batch(gateway, key, body, args.stream, args.warmup, args.concurrency, clock)
    if args.writer:
        await _drained(gateway, clock)  # the warm-up's rows are written before counting starts
    profiler = None
    if args.count == "callgrind":
        await _toggle(True)
    elif args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    if served is not None:
        await served.batch(args.n)
    else:
        await _batch(gateway, key, body, args.stream, args.n, args.concurrency, clock)
    if args.writer:
        await _drained(gateway, clock)  # the measured calls' rows are part of their cost
    wall = time.perf_counter() - t0
    if args.count == "callgrind":
        await _toggle(False)
    elif profiler is not None:
        profiler.disable()
        _print_profile(profiler, args.n)
    if clock is not None:
        clock.release_all()
    if served is not None:
        await served.close()
    if args.writer:
        stats = gateway.services.writer.stats_dict()
        print(f"writer: {stats['batches']} batches, {stats['avg_batch_rows']} rows each")
        await gateway.shutdown()
    else:  # the held rows are abandoned with the process (a bench database)
        await gateway.services.http.close()
    print(f"wall {wall:.3f} s, {args.n / wall:.0f} calls/s (not a benchmark: see README)")


def _print_profile(profiler: Any, n: int) -> None:
    import pstats

    stats = pstats.Stats(profiler)
    total = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(f"python function calls per request: {total / n:.1f}")
    by_package: dict[str, list[float]] = {}
    for (filename, _, _), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        parts = filename.split("/")
        name = next(
            (parts[i + 1] for i, p in enumerate(parts) if p in ("site-packages", "src")),
            "stdlib/builtins",
        )
        acc = by_package.setdefault(name, [0, 0.0])
        acc[0] += calls
        acc[1] += tottime
    print("calls per request by package (tottime share; syscalls inflate it):")
    cpu = sum(v[1] for v in by_package.values()) or 1.0
    for name, (calls, tottime) in sorted(by_package.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:24} {calls / n:7.1f} calls  {100 * tottime / cpu:5.1f} %")
    stats.sort_stats(os.environ.get("SORT", "tottime")).print_stats(args_top())


def args_top() -> int:
    return int(os.environ.get("TOP", "40"))


def _start_upstream(tls_dir: str | None, trickle_ms: float) -> tuple[subprocess.Popen[str], int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tls = ["--tls-dir", tls_dir] if tls_dir else []
    proc = subprocess.Popen(
        [sys.executable, __file__, "--upstream", str(port), "--trickle", str(trickle_ms), *tls],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("upstream did not start")
    return proc, port


def _inner(args: argparse.Namespace) -> None:
    import uvloop

    if args.tls_dir:  # before the gateway builds its TLS contexts
        os.environ["SSL_CERT_FILE"] = str(Path(args.tls_dir) / "ca.pem")
    upstream, port = _start_upstream(args.tls_dir, args.trickle)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            uvloop.run(gateway_run(args, port, Path(tmp)))
    finally:
        upstream.terminate()
        upstream.wait()
    if not args.writer:  # the abandoned rows' threads must not hold the exit
        sys.stdout.flush()
        os._exit(0)


def _callgrind(argv: list[str], n: int, keep: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep or tmp) / "cg.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--inner",
            *argv,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-3000:])
            raise SystemExit(done.returncode)
        per_thread: list[int] = []
        for path in sorted(glob.glob(f"{out}*")):
            text = Path(path).read_text(errors="replace")
            m = re.search(r"^totals:\s*(\d+)", text, re.M)
            if m:
                per_thread.append(int(m.group(1)))
        if not per_thread:
            raise SystemExit("no callgrind output")
        loop = per_thread[0]
        total = sum(per_thread)
        n = max(n, 1)
        print(
            f"instructions per request: {total / n:,.0f} "
            f"(event loop thread {loop / n:,.0f}, other threads {(total - loop) / n:,.0f}; "
            f"{n} calls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="measured calls")
    parser.add_argument(
        "--warmup",
        type=int,
        help="unmeasured calls first (default 50; with --writer 250: two whole batches, so "
        "the statements of a batch's sizes are prepared, as in a running gateway)",
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--writer",
        action="store_true",
        help="count the log writer's batches too (driven by call counts: deterministic)",
    )
    parser.add_argument(
        "--spool-every", type=int, default=25, help="--writer: calls per spool step"
    )
    parser.add_argument(
        "--write-every", type=int, default=100, help="--writer: calls per database batch"
    )
    parser.add_argument("--tls", action="store_true", help="the upstream on https://")
    parser.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        metavar="MS",
        help="--stream: one event per MS ms (one event per read), not the answer at once",
    )
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--client",
        choices=("h1", "aiohttp"),
        default="h1",
        help="the client for https:// upstreams (aiohttp: the path before the lean one had TLS)",
    )
    parser.add_argument("--count", choices=("callgrind", "none"), default="callgrind")
    parser.add_argument(
        "--callgrind-out",
        metavar="DIR",
        help="keep callgrind's files (one per thread) in DIR, for callgrind_annotate",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile (implies --count none)")
    parser.add_argument(
        "--server",
        action="store_true",
        help="through llmrelay's HTTP server protocol on a socket (sequential calls)",
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream, args.tls_dir, args.trickle)
        return
    if args.client_of:
        serve_client(args.client_of, args.client_key, args.stream)
        return
    if args.server and (args.writer or args.concurrency != 1):
        parser.error("--server runs sequential calls without --writer")
    if args.warmup is None:
        args.warmup = 2 * args.write_every + 2 * args.spool_every if args.writer else 50
    if args.profile:
        args.count = "none"
    if args.tls and not args.tls_dir:
        from llmrelay.mock_upstream.tls import make_tls_files

        with tempfile.TemporaryDirectory() as tmp:
            make_tls_files(Path(tmp))
            args.tls_dir = tmp
            _outer(args)
        return
    _outer(args)


def _outer(args: argparse.Namespace) -> None:
    argv = [a for a in sys.argv[1:] if a != "--tls"]
    if args.tls_dir:
        argv += ["--tls-dir", args.tls_dir]
    if args.count == "callgrind" and not args.inner:
        _callgrind(argv, args.n, args.callgrind_out)
        return
    if args.tls_dir and not args.inner:
        # The gateway in a fresh process: this one imported aiohttp (through the mock's
        # package) before SSL_CERT_FILE was set, and aiohttp reads it at import.
        raise SystemExit(subprocess.run([sys.executable, __file__, "--inner", *argv]).returncode)
    if args.inner:
        args.count = "callgrind" if args.count == "callgrind" else args.count
    _inner(args)


if __name__ == "__main__":
    main()
