"""Integers beyond 64 bits in admin bodies: a 400 naming the field, never a 500.

The standard library's JSON parser (FastAPI's) takes them; orjson and the database do
not. Found by the schemathesis fuzz test on ``PUT /admin/route-configs/{name}``.
"""

from __future__ import annotations

from tests.admin.conftest import Admin, error_of

HUGE = 10**30


async def test_route_config_with_a_huge_integer(admin: Admin) -> None:
    body = {"strategy": "single", "targets": [{"provider": "up", "model": "m"}], "x": HUGE}
    r = await admin.put("/admin/route-configs/huge", body)
    assert error_of(r, 400)["param"] == "config"


async def test_key_metadata_with_a_huge_integer(admin: Admin) -> None:
    r = await admin.post("/admin/virtual-keys", {"name": "huge-meta", "metadata": {"n": HUGE}})
    assert r.status_code == 400, r.text
    assert "integer" in r.json()["error"]["message"] or r.json()["error"]["param"]


async def test_idempotent_create_with_a_huge_integer(admin: Admin) -> None:
    r = await admin.post(
        "/admin/virtual-keys",
        {"name": "huge-idem", "metadata": {"n": HUGE}},
        **{"idempotency-key": "huge-1"},
    )
    assert r.status_code == 400, r.text
