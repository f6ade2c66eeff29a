"""PostgreSQL and Redis for the test suite: found running, or started, or (in CI) a loud failure.

Developers without the services get those tests skipped with the reason; with
``CI=true`` an unreachable service fails the run, because a green CI that silently
skipped the PostgreSQL suite would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _reachable(host, port):
            return True
        time.sleep(0.2)
    return False


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    return (out.stdout + out.stderr).strip()


def _unavailable(what: str, detail: str) -> None:
    message = f"{what} is not reachable and could not be started: {detail}"
    if in_ci():
        pytest.fail(message + " (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(message)


def ensure_postgres() -> None:
    if _reachable(PG_HOST, PG_PORT):
        return
    detail = "no /etc/postgresql cluster found"
    conf = Path("/etc/postgresql")
    if conf.is_dir() and shutil.which("pg_ctlcluster"):
        for version in sorted(p.name for p in conf.iterdir()):
            detail = _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        if _wait(PG_HOST, PG_PORT, 30):
            return
    _unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", detail)


def ensure_redis() -> None:
    if _reachable(REDIS_HOST, REDIS_PORT):
        return
    detail = "redis-server not installed"
    if shutil.which("redis-server"):
        detail = _run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--port",
                str(REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        if _wait(REDIS_HOST, REDIS_PORT, 15):
            return
    _unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}", detail)


def postgres_admin_dsn(database: str = "postgres") -> str:
    user = os.environ.get("LLMRELAY_TEST_PGUSER", "postgres")
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{database}"


CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> str:
    """Debian's Chromium for the browser tests (Playwright cannot download its own here).

    Installed with apt when absent and we are root (CI's container is); with ``CI=true``
    a missing browser fails the run instead of skipping the UI tests.
    """
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    detail = "not installed, and not root to apt-get install it"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            out = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            detail = (out.stdout + out.stderr).strip()[-2000:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            detail = f"apt-get: {exc}"
        if os.access(CHROMIUM, os.X_OK):
            return CHROMIUM
    _unavailable(f"Chromium at {CHROMIUM}", detail)
    raise AssertionError("unreachable")  # _unavailable fails or skips
