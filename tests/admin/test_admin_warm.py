"""The admin API is built aside once start-up is complete, so the first admin call does
not build it (about a second of imports and route building, which it used to wait for),
and the proxy never waits for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmrelay.mock_upstream import MockUpstream
from tests.admin.conftest import MASTER
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config


async def test_the_admin_app_is_built_after_start_before_the_first_admin_call(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    config: dict[str, Any] = {**base_config(upstream), "master_key": MASTER}
    gw = InProcessGateway(tmp_path, config)
    await gw.start()
    try:
        admin = gw.app.admin
        warming = admin.warm()  # what start-up began: the same task, not a second build
        assert warming is not None
        key = await gw.create_key("warm")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        # The proxy answers whether or not the build has finished.
        assert (await gw.post("/v1/chat/completions", body, key=key)).status_code == 200
        await warming
        assert admin.built and admin.warm() is warming
        built = admin.app
        r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200
        assert admin.app is built  # the first admin call used the warm app
    finally:
        await gw.stop()


async def test_a_call_during_the_build_waits_for_it_and_shutdown_settles_it(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    gw = InProcessGateway(tmp_path, {**base_config(upstream), "master_key": MASTER})
    await gw.start()
    try:
        r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200 and gw.app.admin.built
    finally:
        await gw.stop()
    gw = InProcessGateway(tmp_path / "again", {**base_config(upstream), "master_key": MASTER})
    await gw.start()
    await gw.stop()  # at once: the build in its thread is waited for, not left behind
    assert gw.app.admin.built


def test_importing_the_gateway_does_not_import_fastapi() -> None:
    probe = "import json, sys\nimport llmrelay.app\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert not [m for m in loaded if m.split(".")[0] in ("fastapi", "starlette")]


async def test_a_failed_background_build_leaves_the_first_call_to_build(
    upstream: MockUpstream, tmp_path: Path, monkeypatch: Any
) -> None:
    import llmrelay.admin.app as admin_app

    real = admin_app.build_app
    calls: list[int] = []

    def failing(services: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no FastAPI today")
        return real(services)

    monkeypatch.setattr(admin_app, "build_app", failing)
    gw = InProcessGateway(tmp_path, {**base_config(upstream), "master_key": MASTER})
    await gw.start()
    try:
        warming = gw.app.admin.warm()
        assert warming is not None
        await warming
        assert not gw.app.admin.built  # logged, not raised
        r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200 and len(calls) == 2
    finally:
        await gw.stop()


async def test_with_warm_up_off_the_first_admin_call_builds_it(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    config: dict[str, Any] = {
        **base_config(upstream),
        "master_key": MASTER,
        "admin": {"warm_up": False},
    }
    gw = InProcessGateway(tmp_path, config)
    await gw.start()
    try:
        admin = gw.app.admin
        assert admin.warm() is None and not admin.built  # nothing was started aside
        r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200 and admin.built
    finally:
        await gw.stop()
