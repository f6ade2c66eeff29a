"""Idle RSS after start: ``llmrelay serve`` on the embedded default, with and without
the admin plane's warm-up (``AdminPlane.warm``, which builds the FastAPI app in a thread
once the server listens).

    .venv/bin/python bench/idle_rss.py --n 3 --settle 8

Each run is a fresh process in an empty directory whose SQLite database a first run
created and migrated. After the "listening" log line the process is left idle for
``--settle`` seconds (long enough for the warm-up thread to finish on a loaded
machine), then ``VmRSS`` and ``VmHWM`` are read from ``/proc``. The variant "no warm-up"
runs the same command with ``AdminPlane.warm`` replaced by a no-op (the first admin call
then builds the app), and the last column is read after one
``GET /admin/openapi.json`` (the first admin call builds the app when nothing warmed it).
Figures in MB (``/proc/<pid>/status``; ``RssFile`` is mostly shared libraries' pages).
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PYTHON = sys.executable
NO_WARM = (
    "import sys; import llmrelay.admin.app as a; a.AdminPlane.warm = lambda self: None; "
    "from llmrelay.cli import main; sys.argv[0] = 'llmrelay'; raise SystemExit(main())"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0]) // 1024  # MB
    return out


def run(cwd: Path, warm: bool, settle: float, touch_admin: bool) -> dict[str, int]:
    port = _free_port()
    head = [PYTHON, "-m", "llmrelay"] if warm else [PYTHON, "-c", NO_WARM]
    cmd = [*head, "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            break
    else:
        raise SystemExit(f"serve exited {proc.wait()} before listening")
    time.sleep(settle)
    figures = _status(proc.pid)
    if touch_admin:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/openapi.json", timeout=60)
        except urllib.error.URLError as exc:
            raise SystemExit(f"admin call failed: {exc}") from exc
        time.sleep(1.0)
        after = _status(proc.pid)
        figures["VmRSS after /admin"] = after["VmRSS"]
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    if proc.wait(30) != 0:
        raise SystemExit("serve did not exit 0 after SIGTERM")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3, help="runs per variant")
    parser.add_argument("--settle", type=float, default=8.0, help="idle seconds before reading")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmrelay-rss-") as tmp:
        cwd = Path(tmp)
        run(cwd, True, 0.0, False)  # creates and migrates ./llmrelay.db
        print(
            "| variant | VmRSS MB | of it anonymous / file-backed | VmHWM MB "
            "| VmRSS after one /admin call | runs |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, warm in (("warm-up (default)", True), ("no warm-up", False)):
            runs = [run(cwd, warm, args.settle, True) for _ in range(args.n)]
            rss = statistics.median(r["VmRSS"] for r in runs)
            hwm = statistics.median(r["VmHWM"] for r in runs)
            anon = statistics.median(r["RssAnon"] for r in runs)
            file = statistics.median(r["RssFile"] for r in runs)
            admin = statistics.median(r["VmRSS after /admin"] for r in runs)
            print(
                f"| {name} | {rss:.0f} | {anon:.0f} / {file:.0f} | {hwm:.0f} | {admin:.0f} "
                f"| {len(runs)} |"
            )


if __name__ == "__main__":
    main()
