"""The uvicorn config ``llmrelay serve`` builds: the accept queue fits the connection cap."""

from __future__ import annotations

from llmrelay.config import load_settings
from llmrelay.http_protocol import effective_max_connections
from llmrelay.server import _uvicorn_config


def test_the_listen_backlog_follows_max_connections() -> None:
    """max_connections 8192 -> a backlog of what is allowed open; the default keeps 2048."""
    big = load_settings(env={}, overrides={"max_connections": 8192})
    allowed = effective_max_connections(8192)  # lowered to fit ulimit -n, as serve does
    assert _uvicorn_config(big, object()).backlog == max(2048, allowed)
    assert _uvicorn_config(load_settings(env={}), object()).backlog == 2048
