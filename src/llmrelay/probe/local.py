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
import tempfile
import time
from collections.abc import AsyncIterator
from typing import IO

import aiohttp
import orjson

from llmrelay.config import Settings
from llmrelay.governance.keys import create_key, revoke_key
from llmrelay.redaction import redact
from llmrelay.store import database
from llmrelay.store.ids import new_id

#: Seconds a local gateway may take to start (migrations on a fresh database included).
START_TIMEOUT = 60.0


class LocalGatewayError(Exception):
    """The local gateway did not start (exit code 2)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_file() -> IO[bytes]:
    """Where the serve process's stderr goes (a pipe nobody reads could fill and block it)."""
    return tempfile.TemporaryFile()


def _serve_command(port: int, config_path: str | None) -> list[str]:
    command = [sys.executable, "-m", "llmrelay", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    if config_path:
        command += ["--config", os.path.abspath(config_path)]
    return command


#: uvicorn's and the app's closing words, which say that start-up failed but not why.
_GENERIC = frozenset({"Application startup failed. Exiting.", "start-up failed"})


def _last_line(log: IO[bytes]) -> str:
    """Why the serve process stopped: its last log message that says more than "start-up
    failed" (the JSON log's ``message``, never its traceback), scrubbed and bounded."""
    log.seek(0)
    messages = []
    for line in log.read()[-16384:].decode("utf-8", "replace").splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            entry = line
        message = entry.get("message") if isinstance(entry, dict) else entry
        if isinstance(message, str) and message.strip():
            messages.append(message.strip())
    useful = [m for m in messages if m not in _GENERIC] or messages
    return redact(useful[-1].splitlines()[0])[:300] if useful else ""


async def _wait_healthy(
    proc: asyncio.subprocess.Process, url: str, timeout: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                why = _last_line(log)
                raise LocalGatewayError(
                    f"the local gateway (llmrelay serve) exited with code {proc.returncode}"
                    + (f": {why}" if why else "")
                )
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
    log = _log_file()
    proc = await asyncio.create_subprocess_exec(
        *_serve_command(port, config_path), stdout=asyncio.subprocess.DEVNULL, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(proc, url, START_TIMEOUT, log)
        yield url
    finally:
        log.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
