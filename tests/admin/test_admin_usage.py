"""``/admin/usage`` (from the daily rollup only, JSON and CSV), ``/admin/usage/budgets``
and ``/admin/requests`` (search and one call's detail), on a gateway that logs bodies,
caches answers and runs guardrails."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.admin.conftest import MASTER, Admin, error_of
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config

GUARD = json.dumps({"guardrails": {"input": [{"type": "pii_detection", "action": "redact"}]}})


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {
        **base_config(upstream),
        "master_key": MASTER,
        "log_bodies": True,
        "plugins": {"cache": {"mode": "simple", "ttl": 600}},
    }
    gateway = InProcessGateway(tmp_path_factory.mktemp("admin-usage"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture(scope="module")
async def traffic(gw: InProcessGateway, upstream: MockUpstream) -> dict[str, str]:
    """Calls of three keys: answered, answered from the cache, failed, guarded, over
    budget."""
    upstream.reset()
    a = await gw.create_key("usage-a")
    b = await gw.create_key("usage-b")
    c = await gw.create_key("usage-c", budget=Decimal("0.000001"))
    ids = dict(await gw.query("SELECT name, id FROM api_keys WHERE name LIKE 'usage-%'"))

    async def chat(key: str, model: str, text: str, **headers: str) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        return (await gw.post("/v1/chat/completions", body, key=key, **headers)).status_code

    assert await chat(a, "gpt-4o-mini", "hello there") == 200
    assert await chat(a, "gpt-4o-mini", "hello there") == 200  # the cache answers
    upstream.script(Behaviour(status=500, error_message="boom"))
    assert await chat(a, "gpt-4o-mini", "fail please") >= 500
    assert await chat(b, "claude/claude-3-haiku", "one two three") == 200
    guarded = {"x-llmrelay-config": GUARD}
    assert await chat(b, "gpt-4o-mini", "mail bob@example.com now", **guarded) == 200
    assert await chat(c, "gpt-4o-mini", "hello there") == 200  # spends more than its budget
    await gw.wait_rows("SELECT 1 FROM usage_records", 6)
    await gw.wait_rows("SELECT 1 FROM usage_daily WHERE requests > 0", 3)
    for _ in range(200):  # the rollup is written with the usage rows; all of them counted
        total = await gw.query("SELECT SUM(requests) FROM usage_daily")
        if total[0][0] == 6:
            break
        await asyncio.sleep(0.02)
    return {"a": ids["usage-a"], "b": ids["usage-b"], "c": ids["usage-c"]}


async def test_usage_by_day_and_key_matches_the_calls(
    admin: Admin, gw: InProcessGateway, traffic: dict[str, str]
) -> None:
    r = await admin.get("/admin/usage", by="key")
    assert r.status_code == 200, r.text
    body = r.json()
    by_key = {row["key"]: row for row in body["data"]}
    today = datetime.now(UTC).date().isoformat()
    a, b = by_key[traffic["a"]], by_key[traffic["b"]]
    assert a["period"] == today and a["requests"] == 3 and a["errors"] == 1 and a["cache_hits"] == 1
    assert b["requests"] == 2 and b["errors"] == 0
    # The same sums as the per-call rows (read here by the test, never by the API).
    expected = await gw.query(
        "SELECT api_key_id, SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nanos) "
        "FROM usage_records GROUP BY api_key_id"
    )
    for key_id, prompt, completion, cost in expected:
        row = by_key[key_id]
        assert (row["prompt_tokens"], row["completion_tokens"], row["cost_nanos"]) == (
            prompt,
            completion,
            cost,
        )
    assert body["totals"]["requests"] == 6, (
        await gw.query("SELECT api_key_id, provider, requests FROM usage_daily"),
        await gw.query("SELECT api_key_id, COUNT(*) FROM usage_records GROUP BY api_key_id"),
        await gw.query("SELECT api_key_id, COUNT(*) FROM requests GROUP BY api_key_id"),
    )


async def test_usage_filters_and_month_grouping(admin: Admin, traffic: dict[str, str]) -> None:
    only_claude = (await admin.get("/admin/usage", provider="claude")).json()["data"]
    assert [(r["key"], r["provider"], r["requests"]) for r in only_claude] == [
        (traffic["b"], "claude", 1)
    ]
    by_model = (await admin.get("/admin/usage", key=traffic["a"], by="model")).json()["data"]
    assert [(r["model"], r["requests"]) for r in by_model] == [("gpt-4o-mini", 3)]
    month = (await admin.get("/admin/usage", group="month", by="")).json()
    assert month["data"][0]["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert month["data"][0]["requests"] == 6
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert (await admin.get("/admin/usage", **{"from": tomorrow})).json()["data"] == []
    err = error_of(await admin.get("/admin/usage", by="colour"), 400)
    assert err["param"] == "by"
    error_of(await admin.get("/admin/usage", group="week"), 400)
    error_of(await admin.get("/admin/usage", **{"from": "2026-02-30"}), 400)
    err = error_of(await admin.get("/admin/usage", **{"from": tomorrow, "to": "2020-01-01"}), 400)
    assert err["param"] == "from"


async def test_usage_csv_export(admin: Admin, traffic: dict[str, str]) -> None:
    r = await admin.get("/admin/usage", format="csv", by="key,provider")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert set(rows[0]) == {
        "period", "key", "provider", "requests", "prompt_tokens", "completion_tokens",
        "cost_nanos", "cache_hits", "errors", "cost_usd",
    }  # fmt: skip
    assert sum(int(row["requests"]) for row in rows) == 6


async def test_usage_reads_only_the_rollup(
    admin: Admin, gw: InProcessGateway, traffic: dict[str, str]
) -> None:
    before = (await admin.get("/admin/usage", by="key")).json()
    async with gw._engine.begin() as conn:
        await conn.execute(text("CREATE TABLE usage_records_saved AS SELECT * FROM usage_records"))
        await conn.execute(text("DELETE FROM usage_records"))
    try:
        assert (await admin.get("/admin/usage", by="key")).json() == before
    finally:
        async with gw._engine.begin() as conn:
            await conn.execute(text("INSERT INTO usage_records SELECT * FROM usage_records_saved"))
            await conn.execute(text("DROP TABLE usage_records_saved"))


async def test_budgets_show_this_months_spend_against_the_budget(
    admin: Admin, traffic: dict[str, str]
) -> None:
    r = await admin.get("/admin/usage/budgets")
    assert r.status_code == 200, r.text
    rows = {row["api_key_id"]: row for row in r.json()["data"]}
    c, b = rows[traffic["c"]], rows[traffic["b"]]
    assert c["monthly_budget_usd"] == "0.000001000" and c["spent_nanos"] > 1000
    assert c["limit_state"] == "exceeded" and c["remaining_usd"] == "0.000000000"
    assert c["requests"] == 1 and c["used_share"] > 1
    assert b["limit_state"] == "no_budget" and b["spent_nanos"] > 0
    exceeded = (await admin.get("/admin/usage/budgets", state="exceeded")).json()["data"]
    assert [row["name"] for row in exceeded] == ["usage-c"]
    error_of(await admin.get("/admin/usage/budgets", state="broke"), 400)


async def test_requests_search_and_detail(
    admin: Admin, traffic: dict[str, str], gw: InProcessGateway
) -> None:
    listed = (await admin.get("/admin/requests", key=traffic["a"])).json()
    assert listed["total"] == 3
    assert listed["data"][0]["status_code"] >= 500  # newest first
    failed = (await admin.get("/admin/requests", key=traffic["a"], status="5xx")).json()["data"]
    assert len(failed) == 1
    hits = (await admin.get("/admin/requests", cache_hit="true")).json()["data"]
    assert [(h["api_key_id"], h["cache"]) for h in hits] == [(traffic["a"], "HIT")]
    misses = (await admin.get("/admin/requests", cache_hit="false")).json()
    assert misses["total"] == 5
    ok = await admin.get("/admin/requests", model="gpt-4o-mini", status="200")
    assert ok.json()["total"] == 4
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await admin.get("/admin/requests", **{"from": later})).json()["total"] == 0

    detail = await admin.get(f"/admin/requests/{failed[0]['id']}")
    assert detail.status_code == 200, detail.text
    d = detail.json()
    assert d["attempts"] and d["attempts"][0]["status"] == 500
    assert d["response"]["status_code"] == d["status_code"]
    assert "fail please" in d["request_body"]

    guarded = (await admin.get("/admin/requests", key=traffic["b"], model="gpt-4o-mini")).json()
    # The listing carries the findings too (the UI's guardrail badge), types only.
    assert guarded["data"][0]["guardrails"]["findings"][0]["entity"] == "EMAIL"
    assert all(r["guardrails"] is None for r in listed["data"])
    assert listed["data"][0]["created_at"].endswith("+00:00")
    g = (await admin.get(f"/admin/requests/{guarded['data'][0]['id']}")).json()
    assert g["guardrails"]["findings"][0]["entity"] == "EMAIL"
    assert "bob@example.com" not in (g["request_body"] or "")  # logged already redacted
    assert g["response"]["body"] and g["cost_usd"] is not None
    error_of(await admin.get("/admin/requests/nope"), 404)
    error_of(await admin.get("/admin/requests", status="abc"), 400)
