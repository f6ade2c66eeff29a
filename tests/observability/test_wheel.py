"""The built wheel works on a clean machine: built, installed with its locked
dependencies into a fresh venv, then ``llmrelay serve`` from outside the source tree
answers a priced call through the mock provider. So the migrations (the database is
created at start), the price snapshot (the call's cost header) and the tokenizer data
(counted in the installed package) are known to ship in it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway_proc import free_port

ROOT = Path(__file__).parents[2]
UV = ROOT / ".tools" / "bin" / "uv"

pytestmark = pytest.mark.packaging


def _run(*argv: str | Path, cwd: Path, timeout: float = 120) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _install(tmp: Path) -> Path:
    """Build the wheel and install it with the locked dependencies (from uv's cache
    when it has them all, as after ``scripts/bootstrap.sh``; else from the index)."""
    if not UV.exists():
        pytest.fail("uv is missing: run scripts/bootstrap.sh")
    dist = tmp / "dist"
    _run(UV, "build", "--wheel", "--out-dir", dist, ROOT, cwd=tmp)
    [wheel] = dist.glob("llmrelay-*.whl")
    requirements = tmp / "requirements.txt"
    _run(UV, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--project", ROOT, "-o", requirements, cwd=tmp)  # fmt: skip
    venv = tmp / "venv"
    _run(UV, "venv", "-q", venv, "--python", sys.executable, cwd=tmp)
    python = venv / "bin" / "python"
    install = [UV, "pip", "install", "-q", "--python", python, "-r", requirements, wheel]
    try:
        _run(*install, "--offline", cwd=tmp)
    except AssertionError:
        _run(*install, cwd=tmp)
    return venv


def test_wheel_installs_and_serves_outside_the_source_tree(tmp_path: Path) -> None:
    venv = _install(tmp_path)
    python = venv / "bin" / "python"
    where = _run(
        python,
        "-c",
        "import llmrelay, llmrelay.tokenizer as t; print(llmrelay.__file__); "
        "print(t.encoding().encode('hello world'))",
        cwd=tmp_path,
    ).splitlines()
    assert where[0].startswith(str(venv)), where  # not the source tree
    assert where[1] == "[15339, 1917]"  # cl100k_base, from the shipped ranks
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = run_dir / "llmrelay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite+aiosqlite:///{run_dir / 'relay.db'}",
                "log_file": "none",
                "provider_reload_interval": 0,
                "auto_providers": False,
            }
        )
    )
    llmrelay = venv / "bin" / "llmrelay"
    _run(llmrelay, "migrate", "--config", config, cwd=run_dir)
    key = _run(llmrelay, "keys", "--config", config, "create", "--name", "wheel", cwd=run_dir)
    key = key.strip().splitlines()[-1]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(
        [llmrelay, "serve", "--config", config, "--host", "127.0.0.1", "--port", str(port)],
        cwd=run_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the installed gateway did not start"
            time.sleep(0.1)
        r = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        assert float(r.headers["x-llmrelay-cost-usd"]) > 0  # priced from the snapshot
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
