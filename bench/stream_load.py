"""Open-loop stream load: streams opened on a schedule, time to first byte per stream.

    .venv/bin/python bench/stream_load.py \\
        --url http://127.0.0.1:18081/c/21/d/500/v1/chat/completions --rate 500 --streams 10000 \\
        [--pids 123] [-H 'Authorization: Bearer sk-..'] [--json out.json]
    .venv/bin/python bench/stream_load.py --url ... --rate 0 --streams 5000   # a burst: all at once
    .venv/bin/python bench/stream_load.py table run1.json run2.json ...      # markdown table

The client of ``bench/streams.sh``. Stream ``i`` is due at ``i / rate`` seconds (``--rate 0``:
all at once); it gets a new TCP connection, one ``POST`` of a streaming chat completion, and
is read to its end (the chunked terminator, or EOF). Per stream it records, on
``CLOCK_MONOTONIC`` (``time.perf_counter``): when it was due, when the request was written
(right after the connect completed: on loopback that is the kernel's handshake, not the
server's ``accept``), the response head, the first body byte, the end. TTFB is first body
byte minus request written; ``lag`` is written minus due, the client's own delay (it must
stay small for the figures to be the server's: if the client falls behind, the schedule is
no longer the one asked for).

Why not aiohttp: its client costs ~1 ms of CPU per stream set-up and ~50 µs per read; at
thousands of streams it is the bottleneck and measures itself (the old harness: 10 s TTFB
p99 straight to the mock). Here the client is uvloop with a raw ``asyncio.Protocol`` per
stream (no parser: the status line, the end of the head, and the chunked terminator are
found by byte search), ~40 µs a stream and a few µs a read.

``--procs N`` splits the schedule over N client processes (stream ``i`` to process ``i % N``;
they share the start time, CLOCK_MONOTONIC is system-wide). On this 2-core machine one process
is enough (``lag`` shows it) and more do not add CPU; they are there for a bigger box.

While it runs, the parent samples the processes in ``--pids`` every 100 ms: VmRSS (peak) and
CPU (utime + stime); VmHWM is reset first (``echo 5 > /proc/PID/clear_refs``) and read at
the end. Output: one JSON object (``--json``), figures in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
_TERM = b"\r\n0\r\n\r\n"


class _Stream(asyncio.Protocol):
    """One stream: writes the request on connect, timestamps head / first byte / end."""

    __slots__ = ("chunked", "done", "fut", "got", "head", "length", "rec", "req", "tail", "tr")

    def __init__(self, rec: list[Any], req: bytes, fut: asyncio.Future[None]) -> None:
        self.rec = rec
        self.req = req
        self.head = b""
        self.chunked = False
        self.length = -1
        self.got = 0
        self.tail = b""
        self.done = False
        self.fut = fut
        self.tr: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # uvloop's is not an asyncio.Transport subclass
        self.rec[1] = time.perf_counter()
        transport.write(self.req)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        rec = self.rec
        if rec[2] == 0.0:  # still in the head
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            rec[2] = now
            head = self.head[:end].lower()
            try:
                rec[5] = int(head[9:12])
            except ValueError:
                rec[5] = -1
            self.chunked = b"transfer-encoding: chunked" in head
            i = head.find(b"content-length:")
            if i >= 0:
                self.length = int(
                    head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]
                )
            data = self.head[end + 4 :]
            self.head = b""
            if not data:
                if self.length == 0:
                    self._end(now)
                return
        if rec[3] == 0.0:
            rec[3] = now
        self.got += len(data)
        tail = self.tail + data
        if not rec[7] and b"data: [DONE]" in tail:
            rec[7] = True
        self.tail = tail[-32:]
        if (self.chunked and self.tail.endswith(_TERM)) or (0 <= self.length <= self.got):
            self._end(now)

    def _end(self, now: float) -> None:
        if not self.done:
            self.done = True
            self.rec[4] = now
            self.rec[6] = self.got
            if self.tr is not None:
                self.tr.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            self.rec[4] = time.perf_counter()
            self.rec[6] = self.got
            # EOF without a length or a chunked terminator: complete only if the server
            # delimited the body by closing (neither chunked nor a length)
            if self.chunked or self.length >= 0 or self.rec[2] == 0.0:
                self.rec[8] = "cut" if exc is None else f"cut: {type(exc).__name__}"
        if not self.fut.done():
            self.fut.set_result(None)


async def _client(args: argparse.Namespace, t0: float, shard: int, nshards: int) -> list[list[Any]]:
    """Run this process's part of the schedule; one record per stream."""
    loop = asyncio.get_running_loop()
    u = urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    body = json.dumps(
        {
            "model": args.model,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 16,
            "stream": True,
            **({"user": args.user} if args.user else {}),
        },
        separators=(",", ":"),
    ).encode()
    head = [
        f"POST {u.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
    ]
    head += args.header
    head.append(f"Content-Length: {len(body)}")
    req = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    # record: due, written, head, first byte, end, status, bytes, [DONE] seen, error
    recs: list[list[Any]] = []
    futs: list[asyncio.Future[None]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def open_one(rec: list[Any], fut: asyncio.Future[None]) -> None:
        try:
            await loop.create_connection(lambda: _Stream(rec, req, fut), host, port)
        except OSError as e:
            rec[8] = f"connect: {type(e).__name__} {e.errno}"
            rec[4] = time.perf_counter()
            if not fut.done():
                fut.set_result(None)

    ids = range(shard, args.streams, nshards)
    due = [t0 + (i / args.rate if args.rate > 0 else 0.0) for i in ids]
    k = 0
    while k < len(due):
        now = time.perf_counter()
        while k < len(due) and due[k] <= now:
            rec = [due[k], 0.0, 0.0, 0.0, 0.0, 0, 0, False, None]
            fut = loop.create_future()
            recs.append(rec)
            futs.append(fut)
            t = loop.create_task(open_one(rec, fut))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            k += 1
        if k < len(due):
            await asyncio.sleep(max(0.0, due[k] - time.perf_counter()))
    if futs:
        await asyncio.wait(futs, timeout=args.timeout)
        for rec, fut in zip(recs, futs, strict=True):
            if not fut.done() and rec[8] is None:
                rec[8] = "timeout"
    return recs


def _shard_main(args: argparse.Namespace) -> None:
    import uvloop

    shard, nshards = (int(x) for x in args.shard.split("/"))
    recs = uvloop.run(_client(args, args.t0, shard, nshards))
    cpu = time.process_time()
    Path(args.out).write_text(json.dumps({"recs": recs, "cpu_s": cpu}))
    os._exit(0)  # the open transports of timed-out streams: no teardown


def _pct(vals: list[float], q: float) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    i = min(len(s) - 1, max(0, round(q / 100.0 * len(s) + 0.5) - 1))
    return round(s[i] * 1000, 2)


def _cpu_jiffies(pids: list[int]) -> int:
    tot = 0
    for p in pids:
        try:
            parts = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            tot += int(parts[11]) + int(parts[12])
        except (OSError, IndexError, ValueError):
            pass
    return tot


def _status_kb(pids: list[int], key: str) -> int:
    tot = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    tot += int(line.split()[1])
                    break
        except OSError:
            pass
    return tot


def _cpu_busy() -> dict[str, int]:
    """Busy jiffies per CPU (user+nice+system+irq+softirq+steal) from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0] != "cpu":
            out[f[0]] = int(f[1]) + int(f[2]) + int(f[3]) + int(f[6]) + int(f[7]) + int(f[8])
    return out


def _summary(
    recs: list[list[Any]], t0: float, samples: list[tuple[float, int, int]]
) -> dict[str, Any]:
    good = [r[8] is None and r[5] == 200 and r[7] for r in recs]
    ok = [r for r, g in zip(recs, good, strict=True) if g]
    errs: dict[str, int] = {}
    for r, g in zip(recs, good, strict=True):
        if not g:
            why = r[8] or (f"status {r[5]}" if r[5] != 200 else "no [DONE]")
            errs[why] = errs.get(why, 0) + 1
    # open streams over time (written .. end), for the plateau and the peak
    ev = sorted([(r[1], 1) for r in recs if r[1]] + [(r[4], -1) for r in recs if r[1] and r[4]])
    open_now, peak = 0, 0
    at: list[tuple[float, int]] = []
    for t, d in ev:
        open_now += d
        peak = max(peak, open_now)
        at.append((t, open_now))
    # streams written while at least 90 % of the peak were open: the steady state
    import bisect

    times = [t for t, _ in at]

    def open_at(t: float) -> int:
        i = bisect.bisect_right(times, t) - 1
        return at[i][1] if i >= 0 else 0

    plateau = [r for r in ok if open_at(r[1]) >= 0.9 * peak]
    ttfb = [r[3] - r[1] for r in ok]
    last_end = max((r[4] for r in recs if r[4]), default=t0)
    out: dict[str, Any] = {
        "streams": len(recs),
        "ok": len(ok),
        "failed": len(recs) - len(ok),
        "errors": errs,
        "wall_s": round(last_end - t0, 2),
        "peak_open": peak,
        "ttfb_p50_ms": _pct(ttfb, 50),
        "ttfb_p90_ms": _pct(ttfb, 90),
        "ttfb_p99_ms": _pct(ttfb, 99),
        "ttfb_p999_ms": _pct(ttfb, 99.9),
        "ttfb_max_ms": _pct(ttfb, 100),
        "plateau_streams": len(plateau),
        "plateau_ttfb_p50_ms": _pct([r[3] - r[1] for r in plateau], 50),
        "plateau_ttfb_p99_ms": _pct([r[3] - r[1] for r in plateau], 99),
        "head_p99_ms": _pct([r[2] - r[1] for r in ok], 99),
        "from_due_ttfb_p99_ms": _pct([r[3] - r[0] for r in ok], 99),
        "lag_p50_ms": _pct([r[1] - r[0] for r in recs if r[1]], 50),
        "lag_p99_ms": _pct([r[1] - r[0] for r in recs if r[1]], 99),
        "lag_max_ms": _pct([r[1] - r[0] for r in recs if r[1]], 100),
        "total_p50_ms": _pct([r[4] - r[1] for r in ok], 50),
        "total_p99_ms": _pct([r[4] - r[1] for r in ok], 99),
        "bytes_p50": sorted(r[6] for r in ok)[len(ok) // 2] if ok else None,
    }
    if samples:
        # the gateway's CPU per 1 s window (from the 100 ms samples): the busiest second
        busiest = 0.0
        j = 0
        for i in range(len(samples)):
            while samples[i][0] - samples[j][0] > 1.0:
                j += 1
            dt = samples[i][0] - samples[j][0]
            if dt >= 0.9:
                busiest = max(busiest, (samples[i][1] - samples[j][1]) / CLK_TCK / dt)
        out["gw_cpu_busiest_1s_pct"] = round(100 * busiest, 1)
    return out


def _fmt(v: Any, nd: int = 1) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def table(paths: list[str]) -> str:
    """Markdown, a row per run; llmrelay rows: added TTFB against direct's (same rate, rep)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    direct = {(r["rate"], r["stream_s"], r["rep"]): r for r in runs if r["label"] == "direct"}
    rows = [
        "| rate/s | stream s | target | ok / streams | peak open | TTFB p50 / p99 ms"
        " | added p50 / p99 ms | p99 at plateau | client lag p99 ms | gw CPU % mean / busiest s"
        " | gw CPU ms a stream"
        " | VmHWM MB | CPU0 foreign % / CPU1 busy % |",
        "|" + "---|" * 13,
    ]
    for r in runs:
        d = direct.get((r["rate"], r["stream_s"], r["rep"]))
        added = "-"
        if (
            r["label"] != "direct"
            and d
            and r["ttfb_p50_ms"] is not None
            and d["ttfb_p50_ms"] is not None
        ):
            a50 = r["ttfb_p50_ms"] - d["ttfb_p50_ms"]
            added = f"{a50:+,.1f} / {r['ttfb_p99_ms'] - d['ttfb_p99_ms']:+,.1f}"
        rate = "burst" if not r["rate"] else f"{r['rate']:g}"
        busy = r.get("cpu_busy_pct", {})
        foreign = r.get("gw_cpu_foreign_pct", busy.get("cpu0"))
        gw = "-"
        if "gw_cpu_pct" in r:
            gw = f"{r['gw_cpu_pct']:.0f} / {r.get('gw_cpu_busiest_1s_pct', 0):.0f}"
        rows.append(
            f"| {rate} | {r['stream_s']:g} | {r['label']} #{r['rep']} | {r['ok']} / {r['streams']}"
            f" | {r['peak_open']} | {_fmt(r['ttfb_p50_ms'])} / {_fmt(r['ttfb_p99_ms'])} | {added}"
            f" | {_fmt(r['plateau_ttfb_p99_ms'])} | {_fmt(r['lag_p99_ms'])} | {gw}"
            f" | {_fmt(r.get('gw_cpu_ms_per_stream'), 3)} | {_fmt(r.get('gw_vmhwm_mb'))}"
            f" | {_fmt(foreign)} / {_fmt(busy.get('cpu1'))} |"
        )
    errs = [
        f"- {r['label']} #{r['rep']} at {r['rate']:g}/s: {r['errors']}" for r in runs if r["errors"]
    ]
    return "\n".join(rows + errs)


def main() -> None:
    if sys.argv[1:2] == ["table"]:
        print(table(sys.argv[2:]))
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True)
    ap.add_argument(
        "--rate", type=float, default=500.0, help="streams opened per second; 0: all at once"
    )
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--user", default="")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--pids", default="", help="gateway pids to sample (comma-separated)")
    ap.add_argument("--mock-pids", default="", help="upstream mock pids: CPU s only")
    ap.add_argument(
        "--gw-cpu", default="cpu0", help="the gateway's CPU, for the foreign-load figure"
    )
    ap.add_argument("--procs", type=int, default=1, help="client processes")
    ap.add_argument("--timeout", type=float, default=120.0, help="s after the last stream is due")
    ap.add_argument("--label", default="", help="target name (direct, llmrelay) for the table")
    ap.add_argument("--rep", type=int, default=1)
    ap.add_argument(
        "--stream-s", type=float, default=0.0, help="the stream's length (for the table)"
    )
    ap.add_argument("--json", default="")
    ap.add_argument("--records", default="", help="write every stream's record here (JSON)")
    ap.add_argument("--shard", default="", help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if urlsplit(a.url).hostname not in ("127.0.0.1", "localhost"):
        sys.exit("refusing: only 127.0.0.1 targets")
    if not 1 <= a.streams <= 50000 or a.rate < 0 or not 1 <= a.procs <= 16:
        sys.exit("--streams 1..50000, --rate >= 0, --procs 1..16")
    if a.shard:
        _shard_main(a)
        return

    pids = [int(p) for p in a.pids.split(",") if p.strip()]
    for p in pids:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")  # VmHWM := VmRSS
        except OSError:
            pass
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"stream_load.{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    t0 = time.perf_counter() + 0.5 + 0.2 * a.procs  # the shards' start-up before the first due time
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, __file__, *sys.argv[1:]),
                *("--shard", f"{k}/{a.procs}", "--t0", repr(t0), "--out", str(tmp / f"{k}.json")),
            ]
        )
        for k in range(a.procs)
    ]
    mock = [int(p) for p in a.mock_pids.split(",") if p.strip()]
    cpu0, rss_peak, samples = _cpu_jiffies(pids), 0, []
    mock0, stat0, w0 = _cpu_jiffies(mock), _cpu_busy(), time.perf_counter()
    while any(p.poll() is None for p in procs):
        if pids:
            samples.append((time.perf_counter(), _cpu_jiffies(pids), 0))
            rss_peak = max(rss_peak, _status_kb(pids, "VmRSS"))
        time.sleep(0.1)
    cpu1, mock1, stat1, w1 = (
        _cpu_jiffies(pids),
        _cpu_jiffies(mock),
        _cpu_busy(),
        time.perf_counter(),
    )
    recs: list[list[Any]] = []
    client_cpu = 0.0
    for k in range(a.procs):
        part = json.loads((tmp / f"{k}.json").read_text())
        recs += part["recs"]
        client_cpu += part["cpu_s"]
        (tmp / f"{k}.json").unlink()
    tmp.rmdir()
    recs.sort(key=lambda r: r[0])
    t_first_due = recs[0][0] if recs else t0
    window = [s for s in samples if s[0] >= t_first_due]
    out: dict[str, Any] = {
        "label": a.label,
        "rep": a.rep,
        "stream_s": a.stream_s,
        "url": a.url,
        "rate": a.rate,
        "procs": a.procs,
        **_summary(recs, t0, window),
        "client_cpu_s": round(client_cpu, 2),
    }
    wall = out["wall_s"] or 1.0
    out["client_cpu_pct"] = round(100 * client_cpu / wall, 1)
    span = (w1 - w0) * CLK_TCK
    out["cpu_busy_pct"] = {c: round(100 * (stat1[c] - stat0[c]) / span, 1) for c in stat1}
    if mock:
        out["mock_cpu_s"] = round((mock1 - mock0) / CLK_TCK, 2)
    if pids:
        foreign = (stat1[a.gw_cpu] - stat0[a.gw_cpu]) - (cpu1 - cpu0)
        out["gw_cpu_foreign_pct"] = round(max(0.0, 100 * foreign / span), 1)
        out["gw_cpu_s"] = round((cpu1 - cpu0) / CLK_TCK, 2)
        out["gw_cpu_pct"] = round(100 * (cpu1 - cpu0) / CLK_TCK / wall, 1)
        out["gw_peak_rss_mb_sampled"] = round(rss_peak / 1024, 1)
        out["gw_vmhwm_mb"] = round(_status_kb(pids, "VmHWM") / 1024, 1)
        out["gw_cpu_ms_per_stream"] = round((cpu1 - cpu0) / CLK_TCK * 1000 / max(1, len(recs)), 3)
    s = json.dumps(out, indent=1)
    if a.json:
        Path(a.json).write_text(s)
    if a.records:
        Path(a.records).write_text(
            json.dumps(
                [[round(x - t0, 6) if isinstance(x, float) and x else x for x in r] for r in recs]
            )
        )
    print(s)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
