"""``/admin/virtual-keys``: create (seed 004's body), list, read, change, rotate,
delete; every key made is then used through the proxy with the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.admin.conftest import Admin, error_of
from tests.inprocess.app_client import InProcessGateway

SEED_004 = {
    "name": "Production Key",
    "provider": "up",
    "real_api_key": "sk-xxxxx-bound-real-key-0001",
    "rate_limit": 100,
    "budget_limit_usd": 500,
}


def sdk(gw: InProcessGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://gateway.test/v1", api_key=key, http_client=gw.client, max_retries=0
    )


async def chat(gw: InProcessGateway, key: str, model: str = "gpt-4o-mini") -> str:
    answer = await sdk(gw, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    return answer.model


async def refused(gw: InProcessGateway, key: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        await chat(gw, key)


async def create(admin: Admin, **body: Any) -> dict[str, Any]:
    r = await admin.post("/admin/virtual-keys", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_seed_004_body_creates_a_working_key(gw: InProcessGateway, admin: Admin) -> None:
    r = await admin.post("/admin/virtual-keys", SEED_004)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["virtual_key"].startswith("vk-")
    assert made["name"] == "Production Key" and made["provider"] == "up"
    assert made["rate_limit"] == 100 and made["budget_limit_usd"] == 500  # seed 004's number
    assert made["has_real_api_key"] is True and made["status"] == "active"
    assert SEED_004["real_api_key"] not in r.text
    await chat(gw, made["virtual_key"])
    one = await admin.get(f"/admin/virtual-keys/{made['id']}")
    assert one.status_code == 200 and one.json()["id"] == made["id"]
    listed = await admin.get("/admin/virtual-keys", provider="up")
    assert any(k["id"] == made["id"] for k in listed.json()["data"])
    for text in (one.text, listed.text):
        assert made["virtual_key"] not in text and SEED_004["real_api_key"] not in text
    rows = await gw.query("SELECT * FROM api_keys WHERE id = :i", i=made["id"])
    assert SEED_004["real_api_key"] not in repr(rows) and made["virtual_key"] not in repr(rows)


async def test_listing_filters_and_pages(admin: Admin) -> None:
    ids = [(await create(admin, name=f"page-{i}", provider="claude"))["id"] for i in range(3)]
    await admin.patch(f"/admin/virtual-keys/{ids[0]}", {"status": "disabled"})
    page = (await admin.get("/admin/virtual-keys", provider="claude", limit=2)).json()
    assert page["total"] == 3 and len(page["data"]) == 2 and page["limit"] == 2
    rest = (await admin.get("/admin/virtual-keys", provider="claude", offset=2)).json()
    assert [k["id"] for k in page["data"] + rest["data"]] == ids
    disabled = (await admin.get("/admin/virtual-keys", provider="claude", status="disabled")).json()
    assert [k["id"] for k in disabled["data"]] == [ids[0]]
    error_of(await admin.get("/admin/virtual-keys", status="sleeping"), 400)


async def test_update_applies_at_once(gw: InProcessGateway, admin: Admin) -> None:
    made = await create(admin, name="patched")
    key = made["virtual_key"]
    await chat(gw, key)
    r = await admin.patch(
        f"/admin/virtual-keys/{made['id']}",
        {
            "models": ["claude/*"],
            "rate_limit": 7,
            "metadata": {"owner": "ops"},
            "daily_budget_usd": 12.5,
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["models"] == ["claude/*"] and out["rate_limit"] == 7
    assert out["metadata"] == {"owner": "ops"} and out["daily_budget_usd"] == 12.5
    with pytest.raises(openai.PermissionDeniedError):
        await chat(gw, key)  # the cache entry was forgotten: the new allow-list applies
    await admin.patch(f"/admin/virtual-keys/{made['id']}", {"models": None})
    await chat(gw, key)
    await admin.patch(f"/admin/virtual-keys/{made['id']}", {"status": "disabled"})
    await refused(gw, key)
    await admin.patch(f"/admin/virtual-keys/{made['id']}", {"status": "active"})
    await chat(gw, key)


async def test_delete_stops_the_key(gw: InProcessGateway, admin: Admin) -> None:
    made = await create(admin, name="deleted")
    await chat(gw, made["virtual_key"])
    assert (await admin.delete(f"/admin/virtual-keys/{made['id']}")).status_code == 200
    await refused(gw, made["virtual_key"])
    error_of(await admin.get(f"/admin/virtual-keys/{made['id']}"), 404)
    error_of(await admin.delete(f"/admin/virtual-keys/{made['id']}"), 404)


async def test_expired_key_is_refused(gw: InProcessGateway, admin: Admin) -> None:
    made = await create(admin, name="expired", expires_at="2020-01-01T00:00:00Z")
    assert made["status"] == "expired" and made["expires_at"].startswith("2020-01-01")
    await refused(gw, made["virtual_key"])
    later = await create(admin, name="not-yet", expires_at="2999-01-01T00:00:00Z")
    await chat(gw, later["virtual_key"])


async def test_expiry_is_a_column_enforced_on_every_endpoint_and_filtered(
    gw: InProcessGateway, admin: Admin
) -> None:
    made = await create(admin, name="expiring-soon", metadata={"owner": "ops"})
    key, key_id = made["virtual_key"], made["id"]
    await chat(gw, key)
    # Ended through the API: the column is set (not the metadata) and applies at once.
    r = await admin.patch(f"/admin/virtual-keys/{key_id}", {"expires_at": "2021-06-01T12:00:00"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "expired" and r.json()["metadata"] == {"owner": "ops"}
    assert r.json()["expires_at"].startswith("2021-06-01T12:00:00")
    stored = await gw.query("SELECT metadata, expires_at FROM api_keys WHERE id = :k", k=key_id)
    assert "expires_at" not in str(stored[0][0]) and stored[0][1] is not None
    chat_r = await gw.post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        key=key,
    )
    assert chat_r.status_code == 401 and chat_r.json()["error"]["code"] == "key_expired"
    messages = await gw.post(
        "/v1/messages",
        {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        key=key,
    )
    assert messages.status_code == 401
    assert messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "authentication_error"
    responses = await gw.post("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, key=key)
    assert responses.status_code == 401 and responses.json()["error"]["code"] == "key_expired"
    # The listing's status filter: expired keys are neither active nor disabled.
    expired = await admin.get("/admin/virtual-keys", status="expired", limit=500)
    active = await admin.get("/admin/virtual-keys", status="active", limit=500)
    disabled = await admin.get("/admin/virtual-keys", status="disabled", limit=500)
    assert key_id in {k["id"] for k in expired.json()["data"]}
    assert all(k["status"] == "expired" for k in expired.json()["data"])
    assert key_id not in {k["id"] for k in active.json()["data"] + disabled.json()["data"]}
    assert all(k["status"] == "active" for k in active.json()["data"])
    # Cleared: the key works again at once on this instance.
    r = await admin.patch(f"/admin/virtual-keys/{key_id}", {"expires_at": None})
    assert r.json()["status"] == "active" and r.json()["expires_at"] is None
    await chat(gw, key)
    # An expiry with a zone is stored and shown in UTC.
    r = await admin.patch(
        f"/admin/virtual-keys/{key_id}", {"expires_at": "2999-01-01T02:00:00+02:00"}
    )
    assert r.json()["expires_at"].startswith("2999-01-01T00:00:00")
    await chat(gw, key)


async def test_rotating_the_secret_with_and_without_grace(
    gw: InProcessGateway, admin: Admin
) -> None:
    made = await create(admin, name="rotated")
    old = made["virtual_key"]
    await chat(gw, old)
    r = await admin.put(f"/admin/virtual-keys/{made['id']}/rotate", {"grace_seconds": 600})
    assert r.status_code == 200, r.text
    new = r.json()["virtual_key"]
    assert new != old and r.json()["id"] == made["id"]
    await chat(gw, new)
    await chat(gw, old)  # within its grace period
    r = await admin.put(f"/admin/virtual-keys/{made['id']}/rotate", {})
    newest = r.json()["virtual_key"]
    await chat(gw, newest)
    await refused(gw, old)
    await refused(gw, new)


async def test_idempotency_key_on_create(admin: Admin) -> None:
    body = {"name": "idem-made", "rate_limit": 5}
    first = await admin.post("/admin/virtual-keys", body, **{"idempotency-key": "abc-1"})
    again = await admin.post("/admin/virtual-keys", body, **{"idempotency-key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json()  # the same key, the same secret
    listed = (await admin.get("/admin/virtual-keys")).json()["data"]
    assert [k["name"] for k in listed].count("idem-made") == 1
    other = await admin.post(
        "/admin/virtual-keys", {**body, "rate_limit": 6}, **{"idempotency-key": "abc-1"}
    )
    assert error_of(other, 409)["code"] == "idempotency_key_reused"
    stored = await admin.get("/admin/audit", resource="virtual_key")
    assert first.json()["virtual_key"] not in stored.text


async def test_idempotency_key_on_rotate(gw: InProcessGateway, admin: Admin) -> None:
    made = await create(admin, name="idem-rotated")
    path = f"/admin/virtual-keys/{made['id']}/rotate"
    first = await admin.put(path, {}, **{"idempotency-key": "rot-1"})
    again = await admin.put(path, {}, **{"idempotency-key": "rot-1"})
    assert first.json()["virtual_key"] == again.json()["virtual_key"]
    await chat(gw, first.json()["virtual_key"])
    rows = await gw.query("SELECT body FROM idempotency_keys")
    assert rows and all(first.json()["virtual_key"] not in r[0] for r in rows)


async def test_bad_input_is_400_naming_the_field(admin: Admin) -> None:
    before = (await admin.get("/admin/virtual-keys")).json()["total"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "rate_limit": -1}, "rate_limit"),
        ({"name": "x", "rate_limit": "many"}, "rate_limit"),
        ({"name": "x", "budget_limit_usd": -5}, "budget_limit_usd"),
        ({"name": "x", "provider": "nowhere"}, "provider"),
        ({"name": "x", "real_api_key": "sk-alone-0000"}, "provider"),
        ({"name": "x", "team": "no-such-team"}, "team"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "", "rate_limit": 1}, "name"),
        ({"name": "x", "models": ["m" * 301]}, "models.0"),
        ({"name": "x", "metadata": {"blob": "b" * 70_000}}, "metadata"),
        ({"name": "x", "metadata": {"llmrelay.expires_at": "soon"}}, "metadata"),
    ]
    for body, param in cases:
        err = error_of(await admin.post("/admin/virtual-keys", body), 400)
        assert err["param"] == param, (body, err)
        assert "sk-alone-0000" not in err["message"]
    assert (await admin.get("/admin/virtual-keys")).json()["total"] == before


async def test_viewer_reads_keys_but_may_not_change_them(
    gw: InProcessGateway, admin: Admin
) -> None:
    token = (await admin.post("/admin/tokens", {"name": "keys-viewer"})).json()["token"]
    viewer = Admin(gw.client, token)
    made = await create(admin, name="viewed")
    assert (await viewer.get(f"/admin/virtual-keys/{made['id']}")).status_code == 200
    for r in (
        await viewer.post("/admin/virtual-keys", {"name": "by-viewer"}),
        await viewer.patch(f"/admin/virtual-keys/{made['id']}", {"rate_limit": 1}),
        await viewer.put(f"/admin/virtual-keys/{made['id']}/rotate", {}),
        await viewer.delete(f"/admin/virtual-keys/{made['id']}"),
    ):
        error_of(r, 403)


async def test_changes_are_audited_with_secrets_masked(admin: Admin) -> None:
    made = await create(admin, name="audited-key", provider="up", real_api_key="sk-audit-real-77")
    await admin.put(f"/admin/virtual-keys/{made['id']}/rotate", {"new_api_key": "sk-audit-new-88"})
    entries = (await admin.get("/admin/audit", resource_id=made["id"])).json()["data"]
    assert [e["action"] for e in entries] == ["rotate_real_key", "create"]
    text = repr(entries)
    for secret in (made["virtual_key"], "sk-audit-real-77", "sk-audit-new-88"):
        assert secret not in text
