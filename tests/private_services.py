"""A PostgreSQL or Redis server of a test's own, which the test may stop and start.

Tests of outages must not stop the shared servers other tests use, so these start a
throwaway instance on a free port (PostgreSQL in a fresh ``initdb`` cluster owned by the
``postgres`` user, since the server refuses to run as root; Redis with no persistence).
Missing binaries fail loudly under ``CI=true`` and skip elsewhere, like ``services.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_proc import free_port
from tests.services import _reachable, _unavailable, _wait

_PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for d in _PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


class PrivatePostgres:
    """One PostgreSQL cluster on a free port; ``stop()``/``start()`` simulate an outage."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
        if initdb is None or pg_ctl is None:
            _unavailable("a private PostgreSQL", "initdb/pg_ctl not installed")
        assert initdb is not None and pg_ctl is not None
        self._pg_ctl = pg_ctl
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmrelay-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        out = subprocess.run(
            _as_postgres(
                [
                    initdb,
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            _unavailable("a private PostgreSQL", f"initdb failed: {out.stderr[-500:]}")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database of this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -k {self.dir}"
        out = subprocess.run(
            _as_postgres(
                [
                    self._pg_ctl,
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if out.returncode != 0 or not _wait("127.0.0.1", self.port, 30):
            log = (
                (self.dir / "log").read_text(errors="replace")[-800:]
                if (self.dir / "log").exists()
                else ""
            )
            _unavailable("a private PostgreSQL", f"pg_ctl start failed: {out.stderr} {log}")

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            _as_postgres([self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        deadline = time.monotonic() + 10
        while _reachable("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of failing."""
        pid = self._postmaster_pid()
        if pid:
            subprocess.run(["pkill", "-STOP", "-P", str(pid)], check=False)
            os.kill(pid, 19)

    def resume(self) -> None:
        pid = self._postmaster_pid()
        if pid:
            os.kill(pid, 18)
            subprocess.run(["pkill", "-CONT", "-P", str(pid)], check=False)

    def _postmaster_pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """One Redis server on a free port; ``stop()``/``start()`` simulate an outage."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            _unavailable("a private Redis", "redis-server is not installed")
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait("127.0.0.1", self.port, 15):
            _unavailable("a private Redis", "redis-server did not start listening")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def pause(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, 19)

    def resume(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, 18)

    def close(self) -> None:
        self.resume()
        self.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL of this test's own (stop/start/pause/resume it freely)."""
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A started Redis of this test's own (stop/start/pause/resume it freely)."""
    r = PrivateRedis()
    r.start()
    try:
        yield r
    finally:
        r.close()
