"""A gateway of the local configuration, for a probe run without ``--url``.

It is a real ``llmrelay serve`` subprocess on a free loopback port (so the probe goes
through the same HTTP server, auth and pipeline a client would), with a temporary
virtual key created in the configured database and revoked when the run ends. The
master key is no client key in llmrelay (it guards the admin and ops surfaces), so a
key of its own is what lets the probe call ``/v1`` like any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator

import aiohttp

from llmrelay.config import Settings
from llmrelay.governance.keys import create_key, revoke_key
from llmrelay.store import database
from llmrelay.store.schema import new_id

#: Seconds a local gateway may take to start (migrations on a fresh database included).
START_TIMEOUT = 60.0


class LocalGatewayError(Exception):
    """The local gateway did not start (exit code 2)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_command(port: int, config_path: str | None) -> list[str]:
    command = [sys.executable, "-m", "llmrelay", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    if config_path:
        command += ["--config", os.path.abspath(config_path)]
    return command


async def _wait_healthy(proc: asyncio.subprocess.Process, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise LocalGatewayError(f"llmrelay serve exited with code {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(1)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise LocalGatewayError(f"llmrelay serve did not answer /health within {timeout:g}s")


@contextlib.asynccontextmanager
async def temporary_key(settings: Settings) -> AsyncIterator[str]:
    """A key named ``probe-<id>`` in the configured database, revoked afterwards."""
    engine = database.create_engine(settings.database_url)
    name = f"probe-{new_id()[:12]}"
    try:
        await database.migrate(engine)
        sessions = database.sessionmaker(engine)
        key, _ = await create_key(sessions, name, metadata={"created_by": "llmrelay probe"})
        try:
            yield key
        finally:
            await revoke_key(sessions, name)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def local_gateway(config_path: str | None) -> AsyncIterator[str]:
    """``llmrelay serve`` on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *_serve_command(port, config_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(proc, url, START_TIMEOUT)
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
