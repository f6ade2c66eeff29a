"""``llmrelay serve --workers 2``: one socket, two processes, one limit (through Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
import yaml

from tests.gateway_proc import GatewayProcess, free_port, wait_workers_ready
from tests.services import REDIS_HOST, REDIS_PORT


def test_two_workers_share_one_limit(redis_server: None, tmp_path: Path) -> None:
    prefix = f"{{workers-{uuid.uuid4().hex}}}:"
    config = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "redis_prefix": prefix,
        "log_file": "none",
        "provider_reload_interval": 0,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmrelay",
            "serve",
            "--config",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_workers_ready(proc, base, 60)
        gw = GatewayProcess(tmp_path, config)
        gw.config_path = path
        key = gw.create_key("shared", rpm=10)
        body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}

        def call(_: int) -> int:
            with httpx.Client() as client:  # a connection each: spread over both workers
                return client.post(
                    base + "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key}"},
                ).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            codes = list(pool.map(call, range(30)))
        assert codes.count(200) == 10, codes
        assert codes.count(429) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.stderr:
                proc.stderr.close()
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        stale = list(client.scan_iter(match=prefix + "*"))
        if stale:
            client.delete(*stale)
        client.close()
