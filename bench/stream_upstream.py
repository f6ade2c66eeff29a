"""A lean trickle upstream for ``bench/streams.sh``: the harness's trickle bytes, ~10x cheaper.

    taskset -c 1 .venv/bin/python bench/stream_upstream.py --port 18091

``POST /c/{N}/d/{D}/v1/chat/completions`` answers N ``chat.completion.chunk`` events D ms
apart (the first right after the head, the last with the finish and usage, then
``data: [DONE]``), chunked, keep-alive: the same bytes as the peers harness's trickle server
(``shared/peers/upstream/trickle.py``; other paths: N=50, D=20). That server is aiohttp and
cost ~1.3 ms of CPU a stream (13.4 s for 10,000 21-event streams at 500/s): on CPU 1 next to
the client it saturated the core by itself, and direct-to-mock TTFB p50 was 3.3 s. This one
is uvloop with a raw protocol and one timer per event (absolute schedule: t0 + i * D).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

CREATED = 1700000000
_PATH = re.compile(rb"^/c/(\d+)/d/([0-9.]+)/v1/chat/completions")
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _chunk(i: int, n: int) -> bytes:
    delta: dict[str, Any] = (
        {"role": "assistant", "content": ""} if i == 0 else {"content": f" tok{i}"}
    )
    c: dict[str, Any] = {
        "id": "chatcmpl-trickle",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_trickle",
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": "stop" if i == n - 1 else None,
            }
        ],
    }
    if i == n - 1:
        c["usage"] = {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": n + 9}
    out = b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"
    if i == n - 1:
        out += b"data: [DONE]\n\n"
    return b"%x\r\n%s\r\n" % (len(out), out)


_cache: dict[int, list[bytes]] = {}


def events(n: int) -> list[bytes]:
    ev = _cache.get(n)
    if ev is None:
        ev = _cache[n] = [_chunk(i, n) for i in range(n)]
        ev[-1] += b"0\r\n\r\n"
    return ev


class _Conn(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.tr = transport
        self.buf = b""
        self.busy = False
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        low = head.lower()
        i = low.find(b"content-length:")
        length = (
            int(low[i + 15 : low.find(b"\r\n", i) if low.find(b"\r\n", i) > 0 else None])
            if i >= 0
            else 0
        )
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length :]
        path = head.split(b" ", 2)[1]
        m = _PATH.match(path)
        n, d = (int(m.group(1)), float(m.group(2)) / 1000) if m else (50, 0.02)
        n = max(1, min(n, 100000))
        ev = events(n)
        self.busy = True
        self.tr.write(HEAD + ev[0])
        if n == 1:
            self._done()
            return
        t0 = self.loop.time()
        for k in range(1, n):
            self.loop.call_at(t0 + k * d, self._send, ev[k], k == n - 1)

    def _send(self, data: bytes, last: bool) -> None:
        if self.tr.is_closing():
            return
        self.tr.write(data)
        if last:
            self._done()

    def _done(self) -> None:
        self.busy = False
        if self.buf:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18091)
    a = ap.parse_args()
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Conn, a.host, a.port, backlog=8192)
        print(f"listening on {a.host}:{a.port}", flush=True)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
