"""Shared set-up of the routing tests: mock upstreams standing in for seed 004's providers.

Seed 004's configs name providers ``openai``, ``anthropic`` and ``ollama``; here they are
three separate mock upstream servers (so each one can be scripted to fail on its own)
configured under exactly those names, so the seed's JSON runs unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess, free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello router"}]}

# Seed 004, "Example 1" (fallback + retry + cache), verbatim.
SEED_FALLBACK: dict[str, Any] = {
    "strategy": "fallback",
    "targets": [
        {"provider": "openai", "model": "gpt-4o-mini", "on_errors": ["timeout", "rate_limit"]},
        {"provider": "anthropic", "model": "claude-3-sonnet", "on_errors": ["timeout"]},
        {"provider": "ollama", "model": "llama3:8b", "on_errors": ["*"]},
    ],
    "retry": {"attempts": 3, "on_status_codes": [429, 500, 502, 503], "exponential_backoff": True},
    "cache": {"mode": "semantic", "ttl": 3600},
}
# Seed 004, "Example 2" (load balance in the ``weights`` form), verbatim.
SEED_LOADBALANCE: dict[str, Any] = {
    "strategy": "loadbalance",
    "weights": [
        {"provider": "openai", "model": "gpt-4o-mini", "weight": 0.9},
        {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "weight": 0.1},
    ],
}


@contextmanager
def mock_upstreams(n: int) -> Iterator[list[MockUpstream]]:
    mocks = [MockUpstream(host="127.0.0.1", port=0).start() for _ in range(n)]
    try:
        yield mocks
    finally:
        for m in mocks:
            m.stop()


def seed_mock_fixtures() -> tuple[Any, Any]:
    """A routing test module's ``mocks`` and ``fresh`` fixtures.

    ``mocks``: three mock upstreams for the module (seed 004's providers, see
    :func:`providers`); ``fresh`` (autouse): every test starts with their scripts and
    request logs empty. A module binds both at its top level, where pytest finds them:
    ``mocks, fresh = seed_mock_fixtures()``.
    """

    @pytest.fixture(scope="module")
    def mocks() -> Iterator[list[MockUpstream]]:
        with mock_upstreams(3) as found:
            yield found

    @pytest.fixture(autouse=True)
    def fresh(mocks: list[MockUpstream]) -> None:
        for m in mocks:
            m.reset()

    return mocks, fresh


def providers(
    openai: MockUpstream, anthropic: MockUpstream, ollama: MockUpstream
) -> list[dict[str, Any]]:
    return [
        {
            "name": "openai",
            "type": "openai_compatible",
            "base_url": openai.base_url,
            "api_key": "sk-openai-upstream-1",
        },
        # A short provider timeout, so the seed's ``on_errors: [timeout]`` can be reached.
        {
            "name": "anthropic",
            "type": "openai_compatible",
            "base_url": anthropic.base_url,
            "api_key": "sk-anthropic-upstream-1",
            "timeout": 1.0,
        },
        {"name": "ollama", "type": "openai_compatible", "base_url": ollama.base_url},
        {
            "name": "dead",
            "type": "openai_compatible",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "connect_timeout": 1,
        },
    ]


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    # One keep-alive client: ``httpx.post`` builds an SSL context per call (~100 ms).
    return httpx.Client()


def post(
    gw: GatewayProcess,
    key: str,
    body: Any = None,
    *,
    config: Any = None,
    header: str = "x-portkey-config",
    timeout: float = 20,
    path: str = "/chat/completions",
    **headers: str,
) -> httpx.Response:
    # Seed 004's example configs carry a cache block, which answers a repeated call;
    # these tests send the same body again and again and watch the upstream attempts.
    h = {"authorization": f"Bearer {key}", "x-llmrelay-cache-bypass": "true", **headers}
    if config is not None:
        h[header] = config if isinstance(config, str) else orjson.dumps(config).decode()
    return _client().post(
        gw.base_url + path, content=orjson.dumps(body or CHAT), headers=h, timeout=timeout
    )


def cli(gw: GatewayProcess, *args: str) -> tuple[int, str, str]:
    """Run ``llmrelay <args> --config <gw's file>`` in this process (no interpreter start)."""
    import contextlib
    import io

    from llmrelay.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([args[0], "--config", str(gw.config_path), *args[1:]])
    return code, out.getvalue(), err.getvalue()


def attempts_of(gw: GatewayProcess, request_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The ``requests.attempts`` JSON of one request (waits for the batch writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = gw.db_query(f"SELECT attempts FROM requests WHERE request_id = '{request_id}'")
        if rows:
            raw = rows[0][0]
            return orjson.loads(raw) if isinstance(raw, str | bytes) else raw
        time.sleep(0.05)
    raise AssertionError(f"no request row for {request_id}")


def row_count(gw: GatewayProcess, request_id: str) -> int:
    time.sleep(0.3)  # longer than the writer's flush interval in tests
    return len(gw.db_query(f"SELECT id FROM requests WHERE request_id = '{request_id}'"))


def sse_events(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]


def streamed_text(text: str) -> str:
    out = ""
    for event in sse_events(text):
        if event == "[DONE]":
            continue
        chunk = orjson.loads(event)
        for choice in chunk.get("choices") or []:
            out += (choice.get("delta") or {}).get("content") or ""
    return out
