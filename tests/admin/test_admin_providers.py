"""``/admin/providers``: CRUD in the YAML entry's field names, credentials sealed and
never shown, YAML providers read-only, changes live at once, and the test call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from llmrelay.mock_upstream import Behaviour, MockUpstream
from llmrelay.services import Services
from tests.admin.conftest import Admin, error_of
from tests.inprocess.app_client import InProcessGateway

SECRET = "sk-stored-provider-secret-7781"


def services(gw: InProcessGateway) -> Services:
    found: Services = gw.app.services
    return found


async def chat(gw: InProcessGateway, key: str, model: str) -> Any:
    return await gw.post(
        "/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "hello there"}]},
        key=key,
    )


async def test_created_provider_serves_at_once_and_hides_its_key(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    body = {
        "name": "stored-a",
        "type": "openai_compatible",
        "base_url": mock.base_url,
        "api_key": SECRET,
        "models": ["gpt-4o-mini"],
    }
    r = await admin.post("/admin/providers", body)
    assert r.status_code == 201, r.text
    shown = r.json()
    assert shown["source"] == "db" and shown["api_key_set"] is True
    assert shown["api_key_hint"] == "sk-…7781" and SECRET not in r.text
    stored = await gw.query("SELECT encrypted_credentials FROM providers WHERE name='stored-a'")
    assert stored and SECRET not in stored[0][0]
    key = await gw.create_key("providers-a")
    answer = await chat(gw, key, "stored-a/gpt-4o-mini")
    assert answer.status_code == 200, answer.text
    assert mock.last_request.headers["authorization"] == f"Bearer {SECRET}"
    for r in (await admin.get("/admin/providers"), await admin.get("/admin/providers/stored-a")):
        assert r.status_code == 200 and SECRET not in r.text
    audit = await admin.get("/admin/audit", resource="provider", resource_id="stored-a")
    assert audit.json()["data"][0]["action"] == "create" and SECRET not in audit.text


async def test_update_takes_effect_and_unchanged_providers_are_kept(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    body = {"name": "stored-b", "type": "openai_compatible", "base_url": mock.base_url}
    assert (
        await admin.post("/admin/providers", {**body, "api_key": "sk-old-b-000000000001"})
    ).status_code == 201
    kept = services(gw).registry.get("up")
    r = await admin.patch("/admin/providers/stored-b", {"api_key": "sk-new-b-000000000002"})
    assert r.status_code == 200, r.text
    assert r.json()["api_key_hint"] == "sk-…0002"
    key = await gw.create_key("providers-b")
    assert (await chat(gw, key, "stored-b/m1")).status_code == 200
    assert mock.last_request.headers["authorization"] == "Bearer sk-new-b-000000000002"
    assert services(gw).registry.get("up") is kept  # same object: state and lists kept
    r = await admin.patch("/admin/providers/stored-b", {"timeout": 5})
    assert r.json()["timeout"] == 5 and r.json()["api_key_set"]  # the key was kept
    r = await admin.patch("/admin/providers/stored-b", {"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert services(gw).registry.get("stored-b") is None
    error_of(await chat(gw, key, "stored-b/m1"), 400)


async def test_delete_removes_the_provider_for_new_calls(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    body = {"name": "stored-c", "type": "openai_compatible", "base_url": mock.base_url}
    assert (await admin.post("/admin/providers", body)).status_code == 201
    key = await gw.create_key("providers-c")
    assert (await chat(gw, key, "stored-c/m1")).status_code == 200
    r = await admin.delete("/admin/providers/stored-c")
    assert r.status_code == 200 and r.json()["name"] == "stored-c"
    error_of(await chat(gw, key, "stored-c/m1"), 400)
    error_of(await admin.get("/admin/providers/stored-c"), 404)
    error_of(await admin.delete("/admin/providers/stored-c"), 404)


async def test_config_providers_are_listed_read_only(admin: Admin) -> None:
    r = await admin.get("/admin/providers", source="config")
    listed = {p["name"]: p for p in r.json()["data"]}
    assert {"up", "claude"} <= set(listed)
    assert listed["up"]["read_only"] and listed["up"]["api_key_set"]
    assert "upstream-secret-key-123" not in r.text
    err = error_of(await admin.delete("/admin/providers/up"), 409)
    assert err["code"] == "provider_from_config"
    error_of(await admin.patch("/admin/providers/up", {"timeout": 3}), 409)
    error_of(await admin.post("/admin/providers", {"name": "up", "type": "mock"}), 409)


async def test_bad_bodies_name_the_field_and_write_nothing(admin: Admin) -> None:
    before = (await admin.get("/admin/providers")).json()["total"]
    cases = [
        ({"name": "x1", "type": "nope"}, "type"),
        ({"name": "x1"}, "type"),
        ({"name": "x1", "type": "openai_compatible", "timeout": "soon"}, "timeout"),
        ({"name": "x1", "type": "openai_compatible", "region": "eu"}, "region"),
        ({"name": "a/b", "type": "openai_compatible", "base_url": "http://x"}, "name"),
        ({"name": "x1", "type": "openai_compatible"}, "base_url"),
        ({"name": "x1", "type": "openai_compatible", "colour": "red"}, "colour"),
    ]
    for body, param in cases:
        err = error_of(await admin.post("/admin/providers", body), 400)
        assert err["param"] == param, (body, err)
    error_of(await admin.post("/admin/providers", ["not", "an", "object"]), 400)
    err = error_of(await admin.patch("/admin/providers/up", {"name": "other"}), 400)
    assert err["param"] == "name"
    assert (await admin.get("/admin/providers")).json()["total"] == before


async def test_a_taken_name_is_409(admin: Admin, mock: MockUpstream) -> None:
    body = {"name": "stored-d", "type": "openai_compatible", "base_url": mock.base_url}
    assert (await admin.post("/admin/providers", body)).status_code == 201
    error_of(await admin.post("/admin/providers", body), 409)


async def test_viewer_reads_providers_but_may_not_change_or_test(
    gw: InProcessGateway, admin: Admin
) -> None:
    token = (await admin.post("/admin/tokens", {"name": "prov-viewer"})).json()["token"]
    viewer = Admin(gw.client, token)
    assert (await viewer.get("/admin/providers")).status_code == 200
    body = {"name": "stored-v", "type": "mock"}
    error_of(await viewer.post("/admin/providers", body), 403)
    error_of(await viewer.delete("/admin/providers/stored-a"), 403)
    error_of(await viewer.post("/admin/providers/up/test", {}), 403)


async def test_test_call_reports_ok_and_scrubbed_failures(admin: Admin, mock: MockUpstream) -> None:
    body = {
        "name": "stored-t",
        "type": "openai_compatible",
        "base_url": mock.base_url,
        "api_key": "sk-probe-secret-0000000099",
    }
    assert (await admin.post("/admin/providers", body)).status_code == 201
    r = await admin.post("/admin/providers/stored-t/test", {"model": "gpt-4o-mini"})
    assert r.status_code == 200, r.text
    ok = r.json()
    assert ok["ok"] is True and ok["status"] == 200 and ok["latency_ms"] >= 0
    assert mock.last_request.body["max_tokens"] == 1
    mock.script(Behaviour(status=401, error_message="bad key sk-probe-secret-0000000099 for you"))
    r = await admin.post("/admin/providers/stored-t/test", {"model": "gpt-4o-mini"})
    failed = r.json()
    assert r.status_code == 200 and failed["ok"] is False and failed["status"] == 401
    assert failed["error_class"] == "UpstreamError", failed
    assert "4xx" in failed["error_classes"]
    assert "sk-probe-secret-0000000099" not in r.text and "redacted" in failed["error"]
    error_of(await admin.post("/admin/providers/nobody/test", {}), 404)
    err = error_of(await admin.post("/admin/providers/stored-t/test", {"model": 5}), 400)
    assert err["param"] == "model"


async def test_a_row_written_in_clear_is_sealed_when_picked_up(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    """Seed 000 inserts credentials in clear ('will be encrypted by app')."""
    async with gw._engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO providers (id, name, provider_type, encrypted_credentials, config,"
                " enabled, source, created_at, updated_at) VALUES ('clear1', 'clear-e',"
                " 'openai_compatible', :creds, :config, true, 'db', CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP)"
            ),
            {
                "creds": '{"api_key": "sk-clear-text-0000000042"}',
                "config": f'{{"base_url": "{mock.base_url}"}}',
            },
        )
    listed = await admin.get("/admin/providers/clear-e")
    assert listed.json()["api_key_set"] and "sk-clear-text-0000000042" not in listed.text
    await services(gw).provider_reloader.reload()
    row = await gw.query("SELECT encrypted_credentials FROM providers WHERE name='clear-e'")
    assert "sk-clear-text" not in row[0][0] and not row[0][0].startswith("{")
    key = await gw.create_key("providers-e")
    assert (await chat(gw, key, "clear-e/m1")).status_code == 200
    assert mock.last_request.headers["authorization"] == "Bearer sk-clear-text-0000000042"
