"""What each open stream holds: memory and objects per stream with N streams open at once.

    .venv/bin/python bench/stream_memory.py --n 500            # tracemalloc + object counts
    .venv/bin/python bench/stream_memory.py --n 2000 --no-trace  # RSS only (no tracing cost)

The gateway is built in this process as ``bench/instructions.py`` builds it (the bench
config, uvloop, its ASGI entry), against a trickle upstream in a **child process** (the
peers harness's shape: chunked ``text/event-stream``, the first event right after the
headers, then one event every ``--delay-ms``, the last with usage, then ``[DONE]``).
``--n`` streams are opened at once; when every one has its first event and the upstream
is holding them (``--hold`` s), the script takes a tracemalloc snapshot and counts live
objects by type, and prints the difference to the idle gateway per open stream: bytes
traced, the top allocation sites, the object types each stream adds, and VmRSS. Then
the streams finish and every one must end with ``[DONE]``.

Deterministic enough to compare commits (object counts are exact; traced bytes move by
a few %); RSS figures depend on the allocator and are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import _scope  # noqa: E402  (the bench's uvicorn-like ASGI scope)

_CHUNK = (
    b'data: {"id":"chatcmpl-trickle","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_trickle","choices":[{"index":0,'
    b'"delta":%s,"logprobs":null,"finish_reason":%s}]%s}\n\n'
)


def _events(n: int) -> list[bytes]:
    out = [_CHUNK % (b'{"role":"assistant","content":""}', b"null", b"")]
    out += [_CHUNK % (b'{"content":" tok%d"}' % i, b"null", b"") for i in range(1, n - 1)]
    out.append(
        _CHUNK
        % (
            b"{}",
            b'"stop"',
            b',"usage":{"prompt_tokens":9,"completion_tokens":%d,"total_tokens":%d}' % (n, n + 9),
        )
        + b"data: [DONE]\n\n"
    )
    return out


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Trickle(asyncio.Protocol):
    HEAD = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    events: list[bytes] = []
    delay = 0.02
    hold = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length :]
        asyncio.get_running_loop().create_task(self.stream())

    async def stream(self) -> None:
        w = self.transport.write
        w(self.HEAD + _chunked(self.events[0]))
        await asyncio.sleep(self.hold)
        for event in self.events[1:]:
            await asyncio.sleep(self.delay)
            if self.transport.is_closing():
                return
            w(_chunked(event))
        w(b"0\r\n\r\n")


def serve_trickle(port: int, chunks: int, delay_ms: float, hold: float) -> None:
    import uvloop

    _Trickle.events = _events(chunks)
    _Trickle.delay = delay_ms / 1000
    _Trickle.hold = hold

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Trickle, "127.0.0.1", port, backlog=8192)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


class _Client:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent_body = False
        self.done = asyncio.Event()
        self.first = asyncio.Event()
        self.status = 0
        self.out: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        self.out.append(message.get("body", b""))
        self.first.set()
        if not message.get("more_body", False):
            self.done.set()


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _site(filename: str, line: int) -> str:
    return f"{filename.split('/src/')[-1].split('/lib/')[-1]}:{line}"


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def run(args: argparse.Namespace, port: int, workdir: Path) -> None:
    from llmrelay.app import Gateway
    from llmrelay.config import load_settings
    from llmrelay.governance.keys import create_key

    settings = load_settings(
        HERE / "config.yaml",
        env={},
        overrides={
            "database_url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "log_file": str(workdir / "interactions.log"),
            **(
                {} if args.writer else {"log_flush_interval": 3600.0, "log_spool_interval": 3600.0}
            ),  # without --writer rows wait in the queue, uncounted
            "providers": [
                {
                    "name": "bench",
                    "type": "openai_compatible",
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "api_key": "dummy",
                }
            ],
        },
    )
    gateway = Gateway(settings, env={})
    await gateway.startup()
    key, _ = await create_key(gateway.services.sessions, "bench")
    body = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],'
        b'"max_tokens":16,"stream":true,"user":"trickle"}'
    )

    async def one(client: _Client) -> None:
        await gateway(_scope(key, len(body)), client.receive, client.send)

    warm = [_Client(body) for _ in range(20)]  # connections, caches, code paths warmed
    await asyncio.gather(*(one(c) for c in warm))
    gc.collect()
    if args.trace:
        tracemalloc.start(args.frames)
    base_types = _types() if args.trace else Counter()
    base_snap = tracemalloc.take_snapshot() if args.trace else None
    base_rss = _rss_kb()
    clients = [_Client(body) for _ in range(args.n)]
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(one(c)) for c in clients]
    await asyncio.gather(*(c.first.wait() for c in clients))
    ttfb = time.perf_counter() - t0
    open_rss = _rss_kb()
    n = args.n
    print(f"{n} streams open (all had their first event after {ttfb:.2f} s, indicative)")
    print(f"VmRSS idle {base_rss / 1024:.1f} MB, open {open_rss / 1024:.1f} MB: "
          f"{(open_rss - base_rss) / n:.1f} kB per stream (allocator-dependent)")  # fmt: skip
    if base_snap is not None:
        gc.collect()
        snap = tracemalloc.take_snapshot()
        types = _types()
        stats = snap.compare_to(base_snap, "traceback" if args.frames > 1 else "lineno")
        total = sum(s.size_diff for s in stats)
        print(f"traced: {total / n:,.0f} bytes per open stream")
        print("top allocation sites (bytes per stream, blocks per stream):")
        for s in stats[: args.top]:
            frames = [_site(f.filename, f.lineno) for f in s.traceback]
            print(f"  {s.size_diff / n:8.0f} B {s.count_diff / n:6.1f}  {' <- '.join(frames[:3])}")
        diff = {t: c - base_types.get(t, 0) for t, c in types.items()}
        objs = sum(v for v in diff.values() if v > 0)
        print(f"gc-tracked objects per open stream: {objs / n:.1f}")
        for t, c in sorted(diff.items(), key=lambda kv: -kv[1])[: args.top]:
            if c <= 0:
                break
            print(f"  {c / n:6.2f}  {t}")
        tracemalloc.stop()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    done = b"data: [DONE]\n\n"
    bad = [c for c in clients if c.status != 200 or not b"".join(c.out).endswith(done)]
    print(f"all done in {wall:.2f} s (indicative); without [DONE]: {len(bad)}")
    await gateway.services.http.close()
    if bad:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="streams open at once")
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--hold", type=float, default=2.0, help="s before the second event")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per site")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-trace", dest="trace", action="store_false")
    parser.add_argument("--writer", action="store_true", help="the log writer on, as served")
    parser.add_argument("--trickle", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trickle:
        serve_trickle(args.trickle, args.chunks, args.delay_ms, args.hold)
        return
    import socket

    import uvloop

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, __file__, "--trickle", str(port), "--chunks", str(args.chunks)]
    argv += ["--delay-ms", str(args.delay_ms), "--hold", str(args.hold)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("trickle upstream did not start")
        with tempfile.TemporaryDirectory() as tmp:
            uvloop.run(run(args, port, Path(tmp)))
    finally:
        proc.terminate()
        proc.wait()
    sys.stdout.flush()
    os._exit(0)  # the rows held in the writer's queue are abandoned with the process


if __name__ == "__main__":
    main()
