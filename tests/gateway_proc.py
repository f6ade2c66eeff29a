"""Run a real ``llmrelay serve`` process for tests, on a free port, with a given config."""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_workers_ready(proc: subprocess.Popen[bytes], base: str, seconds: float) -> None:
    """Wait until ``serve --workers N`` at ``base`` answers ``/health/ready`` on four
    connections in a row (each may land on another worker), failing with the server's
    stderr if it exits first."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if all(httpx.get(base + "/health/ready").status_code == 200 for _ in range(4)):
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)


@functools.cache
def migrated_sqlite() -> Path:
    """A SQLite database migrated to the newest revision, made once per test process.

    A gateway's start on an empty database runs the migrations: Alembic's imports and
    the schema's DDL took about 0.9 s of CPU of the 2.3 s a start cost (1.45 s on a
    database already at the newest revision, which skips Alembic), paid again by each
    of the suite's gateway processes (55 in the first pass, counted 2026-12-04). So a
    test gateway's default database starts as a copy of this one; the migrations
    themselves are tested on empty databases by tests/unit/test_migrations.py and the
    in-process tier, and every gateway given its own ``database_url`` still migrates it.
    """
    from llmrelay.store.database import migrate_url

    directory = Path(tempfile.mkdtemp(prefix="llmrelay-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "migrated.db"
    thread = threading.Thread(
        target=asyncio.run, args=(migrate_url(f"sqlite+aiosqlite:///{path}"),)
    )
    thread.start()
    thread.join()
    return path


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (whatever is still in a WAL too)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


class GatewayProcess:
    def __init__(
        self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.config = dict(config)
        #: The default database, a copy of :func:`migrated_sqlite` made at the first start.
        self._seed_db: Path | None = None
        if "database_url" not in self.config:
            self._seed_db = workdir / "llmrelay.db"
            self.config["database_url"] = f"sqlite+aiosqlite:///{self._seed_db}"
        self.config.setdefault("log_file", str(workdir / "interactions.log"))
        self.config.setdefault("log_flush_interval", 0.02)
        # Background model-list refreshes would interleave with the requests tests inspect
        # on the shared mock upstream; tests of the refresh set their own interval.
        self.config.setdefault("provider_reload_interval", 0)
        # Most test gateways never call /admin: building it aside at every start cost
        # about a second of CPU each, taken from the tests running beside it on the
        # 2-core CI machine. Those that call it build it at the first call; the browser
        # tier, whose pages call it first thing, keeps the warm-up (tests/ui/conftest.py).
        self.config.setdefault("admin", {"warm_up": False})
        self.port = free_port()
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / "llmrelay.yaml"

    @property
    def database_url(self) -> str:
        return str(self.config["database_url"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
        for name in (
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OPENROUTER_API_KEY",
            "GROQ_API_KEY",
            "OPENAI_BASE_URL",
        ):
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._seed_db is not None and not self._seed_db.exists():
            copy_sqlite(migrated_sqlite(), self._seed_db)
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.stdout = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115
        self.stderr = open(self.workdir / "stderr.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmrelay",
                "serve",
                "--config",
                str(self.config_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.workdir,
            env=self.env(),
            stdout=self.stdout,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start in {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return (self.workdir / "stderr.log").read_text(errors="replace")[-4000:]

    def interactions(self) -> str:
        path = self.workdir / "interactions.log"
        return path.read_text() if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stdout.close()
        self.stderr.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmrelay", *args, "--config", str(self.config_path)]
            if args[0] != "keys"
            else [
                sys.executable,
                "-m",
                "llmrelay",
                "keys",
                "--config",
                str(self.config_path),
                *args[1:],
            ],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create_key(self, name: str, **kw: Any) -> str:
        """Create a key straight through the library (faster than the CLI)."""
        from llmrelay.governance.keys import create_key
        from llmrelay.store import database

        async def make() -> str:
            engine = database.create_engine(self.database_url)
            try:
                key, _ = await create_key(database.sessionmaker(engine), name, **kw)
                return key
            finally:
                await engine.dispose()

        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(asyncio.run(make())))
        thread.start()
        thread.join()
        return result[0]

    def db_query(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        from llmrelay.store import database

        async def query() -> list[tuple[Any, ...]]:
            engine = database.create_engine(self.database_url)
            try:
                async with engine.connect() as conn:
                    return [tuple(r) for r in (await conn.execute(text(sql))).all()]
            finally:
                await engine.dispose()

        result: list[list[tuple[Any, ...]]] = []
        thread = threading.Thread(target=lambda: result.append(asyncio.run(query())))
        thread.start()
        thread.join()
        return result[0]
