"""Run the gateway under uvicorn (uvloop + httptools), one or many worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmrelay.config import Settings
from llmrelay.telemetry import logs

log = logging.getLogger("llmrelay")


def _uvicorn_config(settings: Settings, app: Any) -> Any:
    """uvicorn's config, with llmrelay's protocol (``http_protocol.py``) and its limits."""
    from llmrelay.http_protocol import ConnectionLimits, LimitedConfig, effective_max_connections

    max_connections = effective_max_connections(settings.max_connections)
    if max_connections < settings.max_connections:
        log.warning(
            "max_connections lowered from %d to %d to fit the file-descriptor limit (ulimit -n)",
            settings.max_connections,
            max_connections,
        )
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_connections=max_connections,
    )
    return LimitedConfig(
        app,
        limits=limits,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        factory=isinstance(app, str),
        loop="uvloop",
        # No WebSocket routes: "auto" imported the websockets package at every start.
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # The gateway ends its calls before uvicorn starts shutting down (app.begin_drain);
        # this bounds the wait for the rest when the signal did not go through the drain.
        timeout_graceful_shutdown=int(settings.drain_timeout) + 2,
        timeout_keep_alive=settings.keep_alive_timeout,
        # Room in the accept queue for as many connections as are allowed open: with
        # uvicorn's 2,048 a burst beyond it waited on the clients' SYN retries (seconds)
        # before the gateway even saw it (bench/streams.sh's burst of 5,000). The
        # kernel caps it at net.core.somaxconn.
        backlog=max(2048, max_connections),
    )


def _address(settings: Settings, sock: socket.socket | None = None) -> str:
    host, port = settings.host, settings.port
    if sock is not None:
        port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(settings: Settings, env_for_workers: dict[str, str]) -> int:
    """Migrate the database once, then serve until SIGTERM/SIGINT."""
    import uvicorn

    from llmrelay.app import Gateway
    from llmrelay.store.database import migrate_url

    logs.configure(settings.log_level)
    if settings.workers == 1:
        config = _uvicorn_config(settings, Gateway(settings))

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started:
                    bound = self.servers[0].sockets[0] if self.servers else None
                    log.info("llmrelay listening on %s", _address(settings, bound))

        server = _Server(config)
        # uvicorn re-raises the captured signal once it has shut down gracefully; with
        # the default disposition that would kill us with -15 after a clean drain.
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        server.run()
        return 0 if server.started else 3

    # Migrate once here so that workers starting together never race on the schema.
    asyncio.run(migrate_url(settings.database_url))
    # Workers rebuild their settings from the environment (set by the CLI from its flags).
    os.environ.update(env_for_workers)
    from uvicorn.supervisors import Multiprocess

    config = _uvicorn_config(settings, "llmrelay.app:create_app")
    sock = config.bind_socket()
    log.info("llmrelay listening on %s with %d workers", _address(settings, sock), settings.workers)
    with _metrics_directory():
        Multiprocess(config, sockets=[sock]).run()
    return 0


@contextlib.contextmanager
def _metrics_directory() -> Iterator[str]:
    """prometheus-client's multiprocess directory for this worker set (see
    ``telemetry/scrape.py``): the operator's ``PROMETHEUS_MULTIPROC_DIR``, emptied of a
    previous run's files (they would be summed into this run's counters), or a fresh
    temporary one, removed at exit. Set before the workers start, which read it when
    they first import prometheus-client."""
    from llmrelay.telemetry.scrape import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield given
        return
    made = tempfile.mkdtemp(prefix="llmrelay-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
