"""Start-up time: ``import llmrelay.app`` and ``llmrelay serve`` to its "listening" line.

    taskset -c 0 .venv/bin/python bench/startup.py --n 10

Each figure is a fresh process (``.pyc`` files already compiled: the first run of each
writes them, ``PYTHONDONTWRITEBYTECODE`` is unset for the runs; with it set and no
compiled files, as this machine's environment had it, every start compiles each module
from source, ~2 s of CPU), median and minimum of
``--n`` runs, wall seconds, plus the process's own CPU seconds (user + system, which a
busy machine inflates less than wall time; for ``serve``, read from ``/proc/<pid>/stat``
when the "listening" line arrives, so the admin plane's warm-up that starts then and the
idle and stop that follow are not counted):

- ``import llmrelay.app``: ``python -c "import llmrelay.app"``;
- ``serve, embedded default``: ``llmrelay serve --port <free>`` in an empty directory
  (no config file: SQLite ``./llmrelay.db``, created and migrated by the first run, so
  the first run is left out), from the spawn to the "llmrelay listening" log line;
- ``serve, bench config``: the same with ``--config bench/config.yaml`` on another port
  and a database of its own.

Each served process is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
#: The runs' environment: ``.pyc`` files may be written (by the first, untimed run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def time_import() -> tuple[float, float]:
    t0 = time.perf_counter()
    before = os.times()
    subprocess.run([PYTHON, "-c", "import llmrelay.app"], check=True, env=ENV)
    after = os.times()
    wall = time.perf_counter() - t0
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (``/proc/<pid>/stat`` fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_serve(cwd: Path, extra: list[str]) -> tuple[float, float]:
    port = _free_port()
    cmd = [PYTHON, "-m", "llmrelay", "serve", "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, *extra],
        cwd=cwd,
        env=ENV,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    wall = None
    cpu = 0.0
    for line in proc.stderr:
        if "listening on" in line:
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds(proc.pid)
            break
    if wall is None:
        proc.wait()
        raise SystemExit(f"serve exited {proc.returncode} before listening")
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    code = proc.wait(30)
    if code != 0:
        raise SystemExit(f"serve exited {code} after SIGTERM")
    return wall, cpu


def report(name: str, runs: list[tuple[float, float]]) -> None:
    walls = [w for w, _ in runs]
    cpus = [c for _, c in runs]
    print(
        f"| {name} | {statistics.median(walls) * 1000:.0f} | {min(walls) * 1000:.0f} "
        f"| {statistics.median(cpus) * 1000:.0f} | {len(runs)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="runs per figure")
    args = parser.parse_args()
    print("| what | wall median ms | wall min ms | CPU median ms | runs |")
    print("| --- | ---: | ---: | ---: | ---: |")
    time_import()  # compile what is not compiled yet
    report("`import llmrelay.app`", [time_import() for _ in range(args.n)])
    with tempfile.TemporaryDirectory(prefix="llmrelay-startup-") as tmp:
        embedded = Path(tmp) / "embedded"
        embedded.mkdir()
        time_serve(embedded, [])  # creates and migrates ./llmrelay.db
        report(
            "`llmrelay serve`, embedded default", [time_serve(embedded, []) for _ in range(args.n)]
        )
        bench = Path(tmp) / "bench"
        bench.mkdir()
        config = bench / "config.yaml"
        config.write_text(
            (ROOT / "bench" / "config.yaml")
            .read_text()
            .replace("/tmp/peers/llmrelay-bench.db", str(bench / "bench.db"))
            .replace("/tmp/peers/logs/llmrelay-interactions.log", str(bench / "interactions.log"))
        )
        time_serve(bench, ["--config", str(config)])
        report(
            "`llmrelay serve --config bench/config.yaml`",
            [time_serve(bench, ["--config", str(config)]) for _ in range(args.n)],
        )


if __name__ == "__main__":
    main()
