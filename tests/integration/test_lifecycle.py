"""Start-up, the CLI, configuration errors and graceful shutdown of a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.gateway_proc import GatewayProcess

Start = Callable[..., GatewayProcess]


def llmrelay(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_cli_flow(start_gateway: Start) -> None:
    gw = start_gateway()
    created = gw.cli("keys", "create", "--name", "demo", "--models", "mock/*", "--rpm", "60")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-relay-") and len(key) > 40
    r = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi"
    listing = gw.cli("keys", "list")
    assert listing.returncode == 0 and "demo" in listing.stdout
    assert key not in listing.stdout and key[12:] not in listing.stdout
    stored = gw.db_query("SELECT key_hash FROM api_keys WHERE name = 'demo'")[0][0]
    assert key not in str(stored) and len(stored) == 64
    dup = gw.cli("keys", "create", "--name", "demo")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert gw.cli("keys", "revoke", "demo").returncode == 0
    assert gw.cli("keys", "revoke", "demo").returncode == 1


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("providers:\n  - name: a\n    type: openai\n    tiemout: 3\n")
    r = llmrelay("serve", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2
    assert "tiemout" in r.stderr and "providers[0]" in r.stderr
    cfg.write_text("providers:\n  - name: a\n    type: nosuch\n")
    r = llmrelay("serve", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "providers[0].type" in r.stderr


def test_env_interpolation_and_overrides(
    start_gateway: Start, upstream: MockUpstream, mock: MockUpstream
) -> None:
    gw = start_gateway(
        {
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": "${UP_URL}",
                    "api_key": "${UP_KEY:-fallback-secret}",
                }
            ]
        },
        env={"UP_URL": upstream.base_url},
    )
    key = gw.create_key("k")
    r = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "up/m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200
    assert mock.last_request.headers["authorization"] == "Bearer fallback-secret"
    # Provider credentials are stored encrypted, never in clear.
    stored = gw.db_query("SELECT encrypted_credentials FROM providers WHERE name = 'up'")[0][0]
    assert stored and "fallback-secret" not in stored


def test_ready_log_line_and_fast_start(tmp_path: Path) -> None:
    port = str(__import__("tests.gateway_proc", fromlist=["free_port"]).free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    env["LLMRELAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    env["LLMRELAY_LOG_FILE"] = "none"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "serve", "--host", "127.0.0.1", "--port", port],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "llmrelay listening on http://127.0.0.1:" + port in line
        assert httpx.get(f"http://127.0.0.1:{port}/health").text == "OK"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        if proc.stdout:
            proc.stdout.close()
        proc.stderr.close() if proc.stderr else None


def test_sigterm_drains_streams_and_flushes_logs(
    start_gateway: Start, upstream: MockUpstream, mock: MockUpstream
) -> None:
    gw = start_gateway(
        {
            "drain_timeout": 1.5,
            "log_flush_interval": 1.0,  # rows still queued at SIGTERM must be flushed
            "providers": [
                {
                    "name": "up",
                    "type": "openai_compatible",
                    "base_url": upstream.base_url,
                    "api_key": "k",
                }
            ],
        }
    )
    key = gw.create_key("drain")
    auth = {"authorization": f"Bearer {key}"}
    body = {"model": "up/m", "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    for _ in range(5):
        assert (
            httpx.post(gw.base_url + "/chat/completions", headers=auth, json=body).status_code
            == 200
        )
    # A slow stream that would outlive the drain deadline.
    mock.script(Behaviour(chunk_delay_ms=1000))
    received: list[str] = []

    def read_stream() -> None:
        with httpx.stream(
            "POST",
            gw.base_url + "/chat/completions",
            headers=auth,
            json={**body, "stream": True},
            timeout=30,
        ) as r:
            received.extend(r.iter_lines())

    reader = threading.Thread(target=read_stream)
    reader.start()
    time.sleep(0.5)
    assert gw.proc is not None
    workdir = gw.workdir
    code = gw.stop(signal.SIGTERM)
    reader.join(10)
    assert code == 0
    data = [line.removeprefix("data: ") for line in received if line.startswith("data: ")]
    assert data, "the stream got nothing"
    assert "[DONE]" not in data
    assert "shutting down" in orjson.loads(data[-1])["error"]["message"]
    # Every request made before SIGTERM is in the database after exit.
    gw2 = GatewayProcess(workdir, gw.config)
    rows = gw2.db_query("SELECT count(*) FROM requests r JOIN responses s ON s.request_id = r.id")
    assert rows[0][0] == 6
