"""The admin API's doors: who may call it, what each role may do, the error shape, the
audit log of every change, and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrelay.cli import main
from llmrelay.mock_upstream import MockUpstream
from tests.admin.conftest import MASTER, Admin, error_of
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config


async def test_no_token_wrong_token_and_wrong_scheme_are_401(gw: InProcessGateway) -> None:
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": f"Basic {MASTER}"}):
        r = await gw.client.get("/admin/tokens", headers=headers)
        err = error_of(r, 401)
        assert MASTER not in r.text
        assert err["code"] in {"missing_admin_token", "invalid_admin_token"}


async def test_a_proxy_key_is_not_an_admin_token(gw: InProcessGateway) -> None:
    key = await gw.create_key("not-an-admin")
    r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {key}"})
    error_of(r, 401)


async def test_viewer_reads_but_may_not_change(gw: InProcessGateway, admin: Admin) -> None:
    r = await admin.post("/admin/tokens", {"name": "ops-viewer", "role": "viewer"})
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["token"]
    assert token.startswith("llmrelay-admin-") and created["role"] == "viewer"
    viewer = Admin(gw.client, token)
    listed = await viewer.get("/admin/tokens")
    assert listed.status_code == 200
    assert token not in listed.text  # only the prefix is ever shown again
    assert any(t["name"] == "ops-viewer" for t in listed.json()["data"])
    refused = await viewer.post("/admin/tokens", {"name": "escalate", "role": "admin"})
    assert error_of(refused, 403)["code"] == "admin_role_required"


async def test_revoked_token_stops_at_once(gw: InProcessGateway, admin: Admin) -> None:
    created = (await admin.post("/admin/tokens", {"name": "short-lived", "role": "admin"})).json()
    other = Admin(gw.client, created["token"])
    assert (await other.get("/admin/tokens")).status_code == 200
    revoked = await admin.delete(f"/admin/tokens/{created['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    error_of(await other.get("/admin/tokens"), 401)


async def test_bad_input_names_the_field_and_writes_nothing(admin: Admin) -> None:
    before = (await admin.get("/admin/tokens")).json()["total"]
    err = error_of(await admin.post("/admin/tokens", {"name": "x", "role": "root"}), 400)
    assert err["param"] == "role"
    err = error_of(await admin.post("/admin/tokens", {"name": "x", "colour": "red"}), 400)
    assert err["param"] == "colour"
    err = error_of(await admin.post("/admin/tokens", {"name": "bad\x00name"}), 400)
    assert err["param"] == "name"
    error_of(await admin.post("/admin/tokens", {"name": "n" * 201}), 400)
    error_of(await admin.get("/admin/tokens", limit=0), 400)
    assert (await admin.get("/admin/tokens")).json()["total"] == before


async def test_a_taken_name_is_409(admin: Admin) -> None:
    assert (await admin.post("/admin/tokens", {"name": "twice"})).status_code == 201
    error_of(await admin.post("/admin/tokens", {"name": "twice"}), 409)


async def test_unknown_admin_paths_and_methods(admin: Admin) -> None:
    error_of(await admin.get("/admin/nothing-here"), 404)
    error_of(await admin.delete("/admin/tokens/no-such-id"), 404)
    error_of(await admin.put("/admin/tokens", {}), 405)


async def test_every_change_is_audited_with_secrets_masked(admin: Admin) -> None:
    created = (await admin.post("/admin/tokens", {"name": "audited"})).json()
    await admin.delete(f"/admin/tokens/{created['id']}")
    r = await admin.get("/admin/audit", resource="admin_token", resource_id=created["id"])
    assert r.status_code == 200
    entries = r.json()["data"]
    assert [e["action"] for e in entries] == ["revoke", "create"]  # newest first
    assert all(e["actor"] == "master" for e in entries)
    assert entries[0]["before"]["revoked_at"] is None and entries[0]["after"]["revoked_at"]
    assert created["token"] not in r.text


async def test_openapi_document_lists_the_admin_routes(gw: InProcessGateway) -> None:
    r = await gw.client.get("/admin/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/admin/tokens" in paths and "/admin/audit" in paths


async def test_proxy_routes_never_reach_the_admin_app(gw: InProcessGateway) -> None:
    r = await gw.client.get("/administrator")
    error_of(r, 404)  # the proxy's own 404, not FastAPI's


@pytest.mark.parametrize("role", ["admin", "viewer"])
async def test_cli_creates_a_working_token(
    gw: InProcessGateway, capsys: pytest.CaptureFixture[str], role: str
) -> None:
    env_db = gw.settings.database_url
    code = await _cli(["admin-tokens", "create", "--name", f"cli-{role}", "--role", role], env_db)
    assert code == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    r = await gw.client.get("/admin/tokens", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    listed = await _cli(["admin-tokens", "list"], env_db)
    out = capsys.readouterr().out
    assert listed == 0 and f"cli-{role}" in out and token not in out


async def test_gateway_without_master_key_or_tokens_refuses(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    gateway = InProcessGateway(tmp_path, base_config(upstream))
    await gateway.start()
    try:
        r = await gateway.client.get("/admin/audit", headers={"authorization": "Bearer "})
        error_of(r, 401)
    finally:
        await gateway.stop()


async def _cli(argv: list[str], database_url: str) -> int:
    import asyncio
    import os

    os.environ["LLMRELAY_DATABASE_URL"] = database_url
    try:
        return await asyncio.to_thread(main, argv)
    finally:
        del os.environ["LLMRELAY_DATABASE_URL"]
