"""``/admin/teams``: create, list, change, members, delete (409 with keys unless forced);
a team's limit applies to its keys at once, through the proxy."""

from __future__ import annotations

import openai
import pytest

from tests.admin.conftest import Admin, error_of
from tests.admin.test_virtual_keys import chat, create
from tests.inprocess.app_client import InProcessGateway


async def test_team_crud_and_members(admin: Admin) -> None:
    r = await admin.post(
        "/admin/teams", {"name": "research", "rate_limit": 50, "budget_limit_usd": 20}
    )
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["keys"] == 0 and team["rate_limit"] == 50
    a = await create(admin, name="research-a", team="research")
    b = await create(admin, name="research-b", team=team["id"])
    await create(admin, name="no-team")
    members = (await admin.get("/admin/teams/research/keys")).json()
    assert [k["id"] for k in members["data"]] == [a["id"], b["id"]] and members["total"] == 2
    assert a["virtual_key"] not in repr(members)
    listed = (await admin.get("/admin/virtual-keys", team="research")).json()
    assert {k["id"] for k in listed["data"]} == {a["id"], b["id"]}
    r = await admin.patch("/admin/teams/research", {"rate_limit": None, "tpm_limit": 1000})
    assert r.json()["rate_limit"] is None and r.json()["tpm_limit"] == 1000
    assert r.json()["keys"] == 2
    assert (await admin.get(f"/admin/teams/{team['id']}")).json()["name"] == "research"
    assert any(t["name"] == "research" for t in (await admin.get("/admin/teams")).json()["data"])


async def test_deleting_a_team_with_keys_is_409_unless_forced(admin: Admin) -> None:
    await admin.post("/admin/teams", {"name": "doomed"})
    key = await create(admin, name="doomed-key", team="doomed")
    err = error_of(await admin.delete("/admin/teams/doomed"), 409)
    assert err["code"] == "team_has_keys" and "1 key" in err["message"]
    assert (await admin.get("/admin/teams/doomed")).status_code == 200
    r = await admin.client.delete(
        "/admin/teams/doomed", params={"force": "true"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    error_of(await admin.get("/admin/teams/doomed"), 404)
    kept = (await admin.get(f"/admin/virtual-keys/{key['id']}")).json()
    assert kept["team_id"] is None
    await admin.post("/admin/teams", {"name": "empty"})
    assert (await admin.delete("/admin/teams/empty")).status_code == 200


async def test_bad_team_input(admin: Admin) -> None:
    assert (
        error_of(await admin.post("/admin/teams", {"name": "t", "rate_limit": 0}), 400)["param"]
        == "rate_limit"
    )
    assert (
        error_of(await admin.post("/admin/teams", {"name": "t", "budget": 1}), 400)["param"]
        == "budget"
    )
    big = {"name": "t", "metadata": {"blob": "b" * 70_000}}
    assert error_of(await admin.post("/admin/teams", big), 400)["param"] == "metadata"
    await admin.post("/admin/teams", {"name": "twice-team"})
    error_of(await admin.post("/admin/teams", {"name": "twice-team"}), 409)
    error_of(await admin.get("/admin/teams/nobody"), 404)
    error_of(await admin.get("/admin/teams/nobody/keys"), 404)


async def test_a_team_limit_applies_to_its_keys_at_once(gw: InProcessGateway, admin: Admin) -> None:
    await admin.post("/admin/teams", {"name": "throttled"})
    key = (await create(admin, name="throttled-key", team="throttled"))["virtual_key"]
    await chat(gw, key)
    await admin.patch("/admin/teams/throttled", {"rate_limit": 1})
    await chat(gw, key)  # the one request a minute allowed
    with pytest.raises(openai.RateLimitError) as caught:
        await chat(gw, key)
    assert "throttled" in caught.value.response.text


async def test_team_changes_are_audited(admin: Admin) -> None:
    team = (await admin.post("/admin/teams", {"name": "audited-team"})).json()
    await admin.patch("/admin/teams/audited-team", {"rate_limit": 3})
    entries = (await admin.get("/admin/audit", resource="team", resource_id=team["id"])).json()
    assert [e["action"] for e in entries["data"]] == ["update", "create"]
    assert entries["data"][0]["after"]["rate_limit"] == 3
