"""The container files, checked as far as this machine can without pulling an image:
``compose.yaml`` against the Compose Specification's JSON schema and for its wiring
(profiles, mounts of files that exist, service names the configs use), the Dockerfile
with hadolint and for what the issue asks of it, and the entrypoint's loud failure
when migrations fail (run for real against an unreachable database)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.gateway_proc import free_port

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_file_is_valid_per_the_compose_spec() -> None:
    schema = json.loads((HERE / "data" / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(_compose())


def test_compose_profiles_and_wiring() -> None:
    services = _compose()["services"]
    profiles = {name: tuple(s.get("profiles", ())) for name, s in services.items()}
    assert profiles == {
        "gateway": (),  # `docker compose up`: the embedded gateway alone
        "gateway-ha": ("ha",),
        "postgres": ("ha",),
        "redis": ("ha",),
        "prometheus": ("monitoring",),
        "grafana": ("monitoring",),
    }
    ha = services["gateway-ha"]["environment"]
    assert "@postgres:5432/" in ha["LLMRELAY_DATABASE_URL"]
    assert ha["LLMRELAY_REDIS_URL"].startswith("redis://redis:")
    assert set(services["gateway-ha"]["depends_on"]) == {"postgres", "redis"}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    for sd in job["dns_sd_configs"]:
        assert set(sd["names"]) <= set(services) and sd["port"] == 8080
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/llmrelay.yaml").read_text()
    )
    path = dashboards["providers"][0]["options"]["path"]
    mounts = [v.split(":")[1] for v in services["grafana"]["volumes"]]
    assert f"{path}/llmrelay.json" in mounts


def test_dockerfile_lints_clean_and_has_what_operations_need() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is missing from the venv: run scripts/bootstrap.sh")
    lint = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n.*/health", text, re.M)
    assert 'ENTRYPOINT ["llmrelay-entrypoint"]' in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (ROOT / item).exists(), item
    assert "--frozen" in text  # what uv.lock pins, nothing newer
    # PYTHONDONTWRITEBYTECODE=1 at run time: without compiled files every start compiles
    # each module from source (~2 s of CPU before listening, bench/startup.py).
    assert "--compile-bytecode" in text


def test_entrypoint_fails_loudly_when_migrations_fail(tmp_path: Path) -> None:
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "llmrelay").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m llmrelay "$@"\n')
    (shim / "llmrelay").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    env["PATH"] = f"{shim}:{env['PATH']}"
    # Nothing listens there: the migration cannot connect.
    env["LLMRELAY_DATABASE_URL"] = f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/nothing"
    env["LLMRELAY_PORT"] = str(free_port())
    done = subprocess.run(
        ["sh", str(ROOT / "deploy/docker-entrypoint.sh"), "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "database migrations failed" in done.stderr
    assert "listening" not in done.stderr  # serve never started
    version = subprocess.run(
        ["sh", str(ROOT / "deploy/docker-entrypoint.sh"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.strip()  # other commands: no migration
