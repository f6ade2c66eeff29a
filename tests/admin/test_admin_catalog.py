"""``/admin/models`` (prices, overrides, sync), ``/admin/aliases`` and
``/admin/route-configs``: changes reach the next call at once, bad input names the
field, the YAML file's entries are read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrelay.mock_upstream import MockUpstream
from tests.admin.conftest import MASTER, Admin, error_of
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {
        **base_config(upstream),
        "master_key": MASTER,
        "aliases": {"from-yaml": "up/gpt-4o-mini"},
        "route_configs": {"yaml-rc": {"provider": "up", "model": "gpt-4o-mini"}},
    }
    gateway = InProcessGateway(tmp_path_factory.mktemp("admin-catalog"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def chat(gw: InProcessGateway, key: str, model: str, **headers: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    return await gw.post("/v1/chat/completions", body, key=key, **headers)


async def test_sync_then_price_override_is_charged_and_survives_a_sync(
    gw: InProcessGateway, admin: Admin
) -> None:
    r = await admin.post("/admin/models/sync", {})
    assert r.status_code == 200, r.text
    assert r.json()["synced"] > 1000
    listed = await admin.get("/admin/models", provider="openai", search="gpt-4o-mini")
    names = {m["model_name"]: m for m in listed.json()["data"]}
    assert "gpt-4o-mini" in names and names["gpt-4o-mini"]["price_source"] == "catalog"
    assert names["gpt-4o-mini"]["input_cost_per_token"] is not None
    r = await admin.patch(
        "/admin/models/gpt-4o-mini",
        {"input_cost_per_token": "0.001", "output_cost_per_token": 0.002},
    )
    assert r.status_code == 200, r.text
    assert r.json()["price_source"] == "admin" and r.json()["input_cost_per_token"] == "0.001"
    key = await gw.create_key("catalog-prices")
    answer = await chat(gw, key, "gpt-4o-mini")
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    expected = usage["prompt_tokens"] * 0.001 + usage["completion_tokens"] * 0.002
    assert float(answer.headers["x-llmrelay-cost-usd"]) == pytest.approx(expected)
    assert (await admin.post("/admin/models/sync", {})).status_code == 200
    again = (await admin.get("/admin/models/gpt-4o-mini")).json()
    assert again["input_cost_per_token"] == "0.001" and again["price_source"] == "admin"
    audit = (await admin.get("/admin/audit", resource="model")).json()["data"]
    assert audit[0]["action"] == "set_prices" and audit[0]["before"]["price_source"] == "catalog"


async def test_model_prices_bad_input_and_unknown_names(admin: Admin) -> None:
    err = error_of(
        await admin.patch("/admin/models/gpt-4o-mini", {"input_cost_per_token": -1}), 400
    )
    assert err["param"] == "input_cost_per_token"
    err = error_of(await admin.patch("/admin/models/gpt-4o-mini", {"cost": 1}), 400)
    assert err["param"] == "cost"
    error_of(await admin.patch("/admin/models/gpt-4o-mini", {}), 400)
    error_of(await admin.patch("/admin/models/no-such-model-x", {"input_cost_per_token": 0}), 404)
    error_of(await admin.get("/admin/models/no-such-model-x"), 404)
    err = error_of(await admin.post("/admin/models/sync", {"url": "not a url"}), 400)
    assert err["param"] == "url"


async def test_a_custom_model_with_a_slash_in_its_name(admin: Admin) -> None:
    body = {"model_name": "acme/tuned-1", "input_cost_per_token": "0.0000021"}
    r = await admin.post("/admin/models", body)
    assert r.status_code == 201, r.text
    assert (await admin.get("/admin/models/acme/tuned-1")).json()["input_cost_per_token"] == (
        "0.0000021"
    )
    error_of(await admin.post("/admin/models", body), 409)


async def test_alias_crud_is_live(gw: InProcessGateway, admin: Admin, mock: MockUpstream) -> None:
    key = await gw.create_key("catalog-aliases")
    error_of(await chat(gw, key, "fast"), 400)
    r = await admin.post("/admin/aliases", {"alias": "fast", "target": "up/gpt-4o-mini"})
    assert r.status_code == 201, r.text
    answer = await chat(gw, key, "fast")
    assert answer.status_code == 200, answer.text
    r = await admin.patch("/admin/aliases/fast", {"target": "claude/claude-3-haiku"})
    assert r.status_code == 200 and r.json()["target"] == "claude/claude-3-haiku"
    assert (await chat(gw, key, "fast")).status_code == 200
    assert mock.last_request.path == "/v1/messages"
    assert mock.last_request.body["model"] == "claude-3-haiku"
    r = await admin.patch("/admin/aliases/fast", {"enabled": False})
    assert r.json()["enabled"] is False
    error_of(await chat(gw, key, "fast"), 400)
    assert (await admin.delete("/admin/aliases/fast")).status_code == 200
    error_of(await admin.get("/admin/aliases/fast"), 404)
    listed = (await admin.get("/admin/aliases")).json()["data"]
    assert {"alias": "from-yaml", "source": "config"}.items() <= listed[0].items()


async def test_alias_errors(admin: Admin) -> None:
    err = error_of(await admin.post("/admin/aliases", {"alias": "x", "target": "nowhere"}), 400)
    assert err["param"] == "target"
    err = error_of(await admin.post("/admin/aliases", {"alias": "bad name", "target": "up/m"}), 400)
    assert err["param"] == "alias"
    err = error_of(
        await admin.post("/admin/aliases", {"alias": "from-yaml", "target": "up/m"}), 409
    )
    assert err["code"] == "alias_from_config"
    error_of(await admin.delete("/admin/aliases/from-yaml"), 409)
    assert (
        await admin.post("/admin/aliases", {"alias": "twice", "target": "up/m"})
    ).status_code == 201
    error_of(await admin.post("/admin/aliases", {"alias": "twice", "target": "up/m"}), 409)
    error_of(await admin.patch("/admin/aliases/nobody", {"enabled": True}), 404)


async def test_route_config_crud_is_live(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    key = await gw.create_key("catalog-routes")
    config = {
        "strategy": "fallback",
        "targets": [
            {"provider": "up", "model": "gpt-4o-mini"},
            {"provider": "claude", "model": "c"},
        ],
    }
    r = await admin.put("/admin/route-configs/smart", config)
    assert r.status_code == 201, r.text
    answer = await chat(gw, key, "smart")
    assert answer.status_code == 200, answer.text
    assert mock.last_request.body["model"] == "gpt-4o-mini"
    r = await admin.put("/admin/route-configs/smart", {"provider": "up", "model": "gpt-4.1-nano"})
    assert r.status_code == 200
    assert (await chat(gw, key, "smart")).status_code == 200
    assert mock.last_request.body["model"] == "gpt-4.1-nano"
    assert (await admin.get("/admin/route-configs/smart")).json()["config"][
        "model"
    ] == "gpt-4.1-nano"
    assert (await admin.delete("/admin/route-configs/smart")).status_code == 200
    error_of(await chat(gw, key, "smart"), 400)
    listed = (await admin.get("/admin/route-configs")).json()
    assert listed["data"][0]["name"] == "yaml-rc" and listed["data"][0]["source"] == "config"


async def test_route_config_errors_name_the_field(admin: Admin) -> None:
    bad = {"strategy": "fallback", "targets": [{"provider": "up", "model": "m"}, {"weight": "x"}]}
    err = error_of(await admin.put("/admin/route-configs/bad", bad), 400)
    assert err["param"] and err["param"].startswith("targets[1]"), err
    err = error_of(
        await admin.put("/admin/route-configs/bad", {"provider": "nope", "model": "m"}), 400
    )
    assert err["param"] == "provider", err
    error_of(await admin.put("/admin/route-configs/yaml-rc", {"provider": "up", "model": "m"}), 409)
    error_of(await admin.delete("/admin/route-configs/yaml-rc"), 409)
    error_of(await admin.delete("/admin/route-configs/absent"), 404)
    error_of(await admin.get("/admin/route-configs/absent"), 404)
    error_of(await admin.put("/admin/route-configs/has space", {"provider": "up"}), 400)


async def test_viewer_reads_models_aliases_and_configs_but_changes_nothing(
    gw: InProcessGateway, admin: Admin
) -> None:
    token = (await admin.post("/admin/tokens", {"name": "catalog-viewer"})).json()["token"]
    viewer = Admin(gw.client, token)
    for path in ("/admin/models", "/admin/aliases", "/admin/route-configs", "/admin/usage"):
        assert (await viewer.get(path)).status_code == 200, path
    error_of(await viewer.post("/admin/models/sync", {}), 403)
    error_of(await viewer.patch("/admin/models/gpt-4o-mini", {"input_cost_per_token": 0}), 403)
    error_of(await viewer.post("/admin/aliases", {"alias": "v", "target": "up/m"}), 403)
    error_of(await viewer.put("/admin/route-configs/v", {"provider": "up", "model": "m"}), 403)
    error_of(await viewer.delete("/admin/route-configs/yaml-rc"), 403)
    error_of(await viewer.post("/admin/providers/reload", {}), 403)
