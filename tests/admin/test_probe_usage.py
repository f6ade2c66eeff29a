"""Probe calls (``x-llmrelay-probe: 1``, sent by ``llmrelay probe``) are summed apart in
the daily rollup: ``/admin/usage`` and ``llmrelay usage`` leave them out unless asked."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from llmrelay.cli import main
from tests.admin.conftest import Admin
from tests.inprocess.app_client import InProcessGateway


async def test_probe_calls_are_left_out_of_usage_unless_asked(
    gw: InProcessGateway, admin: Admin, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await gw.create_key("probed-key")
    key_id = (await gw.query("SELECT id FROM api_keys WHERE name = 'probed-key'"))[0][0]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert (await gw.post("/v1/chat/completions", body, key=key)).status_code == 200
    for _ in range(2):
        probe = await gw.post("/v1/chat/completions", body, key=key, **{"x-llmrelay-probe": "1"})
        assert probe.status_code == 200
    for _ in range(500):  # the rollup is written with the usage rows, in the background
        rows = await gw.query(
            "SELECT probe, SUM(requests) FROM usage_daily WHERE api_key_id = :k GROUP BY probe",
            k=key_id,
        )
        if {bool(p): int(n) for p, n in rows} == {False: 1, True: 2}:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail(f"rollup rows: {rows}")

    default = (await admin.get("/admin/usage", key=key_id, by="key")).json()
    assert default["totals"]["requests"] == 1 and default["data"][0]["requests"] == 1
    every = (await admin.get("/admin/usage", key=key_id, by="key", include_probes="true")).json()
    assert every["totals"]["requests"] == 3
    csv_out = await admin.get("/admin/usage", key=key_id, by="key", format="csv")
    assert csv_out.text.splitlines()[1].split(",")[2] == "1"  # period, key, requests

    config = gw.workdir / "cli.yaml"
    config.write_text(yaml.safe_dump({"database_url": gw.database_url}))
    # The command runs its own event loop: in a thread, beside this test's loop.
    code = await asyncio.to_thread(main, ["usage", "--config", str(config), "--key", "probed-key"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("probed-key"))
    assert line.split()[2] == "1", out
    code = await asyncio.to_thread(
        main, ["usage", "--config", str(config), "--key", "probed-key", "--include-probes"]
    )
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("probed-key"))
    assert code == 0 and line.split()[2] == "3", out
    code = await asyncio.to_thread(main, ["usage", "--config", str(config), "--key", "nobody"])
    assert code != 0
