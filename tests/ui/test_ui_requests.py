"""The request log page in Chromium: cache and guardrail badges on real rows, one
request's detail, the filters kept in the URL hash, paging.

The traffic is real calls through the proxy. A guardrail that denies the *input* makes
no upstream call and leaves no row (docs/guardrails.md), so the rows with guardrail
results come from an input ``flag`` (the call goes on, the finding is recorded) and an
output ``deny`` (the model answered, the client got a 400, the row records both).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.ui.conftest import MASTER, gateway_config, login, shot

DASH = "\N{EN DASH}"  # between the first and last row numbers of the pager
ADMIN = {"authorization": f"Bearer {MASTER}"}
#: The traffic is sent before any page loads, so its first admin call builds the admin
#: app: over httpx's 5 s default on the loaded shared host.
SLOW = 30.0
ROUTE_CONFIGS: dict[str, dict[str, Any]] = {
    "ui-deny": {"guardrails": {"input": [{"type": "pii_detection", "action": "deny"}]}},
    "ui-flag": {"guardrails": {"input": [{"type": "pii_detection", "action": "flag"}]}},
    "ui-outdeny": {
        "guardrails": {
            "output": [{"type": "pii_detection", "action": "deny", "entities": ["EMAIL"]}]
        }
    },
    "ui-cache": {"cache": {"mode": "simple", "ttl": 600}},
}
PAGER_CALLS = 26


@pytest.fixture(scope="module")
def gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway of this module's own (its log holds only the traffic below), logging
    bodies so the detail view has some to show."""
    config = {**gateway_config(upstream), "log_bodies": True}
    gw = GatewayProcess(tmp_path_factory.mktemp("ui-requests"), config).start()
    yield gw
    gw.stop()


def _chat(gw: GatewayProcess, secret: str, text: str, config: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}"}
    if config:
        headers["x-llmrelay-config"] = config
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        headers=headers,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        timeout=SLOW,
    )


def _key(gw: GatewayProcess, name: str) -> tuple[str, str]:
    made = httpx.post(
        f"{gw.url}/admin/virtual-keys", headers=ADMIN, json={"name": name}, timeout=SLOW
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["virtual_key"]


def _logged(gw: GatewayProcess, key: str, want: int) -> int:
    seen = -1
    deadline = time.monotonic() + 60  # the log writer flushes in the background
    while time.monotonic() < deadline:
        r = httpx.get(f"{gw.url}/admin/requests", headers=ADMIN, params={"key": key}, timeout=SLOW)
        assert r.status_code == 200, r.text
        seen = r.json()["total"]
        if seen >= want:
            return int(seen)
        time.sleep(0.1)
    raise AssertionError(f"the log holds {seen} rows of key {key}, expected {want}")


def _settled(page: Page) -> None:
    """Wait until the listing drawn is the one of the URL's hash: a filter applied or a
    page turned changes the hash at once and draws the new page a little later, and
    until then the old listing is still there to be (wrongly) read."""
    page.wait_for_function(
        "() => { const l = document.querySelector('#requests-list');"
        " return l !== null && l.dataset.shown === location.hash; }"
    )


@pytest.fixture(scope="module")
def traffic(gateway: GatewayProcess) -> dict[str, str]:
    for name, body in ROUTE_CONFIGS.items():
        put = httpx.put(
            f"{gateway.url}/admin/route-configs/{name}", headers=ADMIN, json=body, timeout=SLOW
        )
        assert put.status_code in (200, 201), put.text
    logger, secret = _key(gateway, "logger")
    denied = _chat(gateway, secret, "mail carol@example.com", "ui-deny")
    assert denied.status_code == 400 and denied.json()["error"]["code"] == "guardrail_denied"
    flagged = _chat(gateway, secret, "write to alice@example.com", "ui-flag")
    assert flagged.status_code == 200, flagged.text
    assert "input.flag.EMAIL=1" in flagged.headers["x-llmrelay-guardrails"]
    # The mock upstream echoes the message: the answer holds the address, the output
    # guardrail denies it.
    out = _chat(gateway, secret, "bob@example.com", "ui-outdeny")
    assert out.status_code == 400, out.text
    miss = _chat(gateway, secret, "cache this answer", "ui-cache")
    hit = _chat(gateway, secret, "cache this answer", "ui-cache")
    assert (miss.headers["x-llmrelay-cache"], hit.headers["x-llmrelay-cache"]) == ("MISS", "HIT")
    pager, pager_secret = _key(gateway, "pager")
    for n in range(PAGER_CALLS):
        assert _chat(gateway, pager_secret, f"call {n}").status_code == 200
    _logged(gateway, pager, PAGER_CALLS)
    # The denied input was sent first and is the one call of four that left no row.
    assert _logged(gateway, logger, 4) == 4
    return {"logger": logger, "pager": pager}


def test_badges_and_one_requests_detail(
    page: Page, gateway: GatewayProcess, traffic: dict[str, str]
) -> None:
    login(page)
    expect(page.locator("#page-keys")).to_be_visible()
    page.goto(f"/ui#/requests?key={traffic['logger']}")
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#filter-key")).to_have_value(traffic["logger"])
    expect(rows.filter(has_text="cache hit")).to_have_count(1)
    expect(rows.filter(has_text="cache miss")).to_have_count(1)
    flagged = rows.filter(has_text="guardrail flag: EMAIL")
    expect(flagged).to_have_count(1)
    expect(flagged.locator("td").nth(4)).to_have_text("200")
    denied = rows.filter(has_text="guardrail deny: EMAIL")
    expect(denied).to_have_count(1)
    expect(denied.locator("td").nth(4)).to_have_text("400")
    expect(rows.first).to_contain_text("logger")  # the key by its name
    shot(page, "requests-badges")

    flagged.locator("a.details").click()
    expect(page.locator("#request-guardrails tbody tr")).to_have_count(1)
    finding = page.locator("#request-guardrails tbody tr")
    for word in ("input", "EMAIL", "flag", "1"):
        expect(finding).to_contain_text(word)
    expect(page.locator("#request-attempts tbody tr")).to_have_count(1)
    expect(page.locator("#request-attempts tbody tr")).to_contain_text("up")
    expect(page.locator("#request-attempts tbody tr")).to_contain_text("200")
    expect(page.locator("#request-response")).to_contain_text("stop")  # finish reason
    expect(page.locator("#request-response")).to_contain_text("alice@example.com")  # echoed
    expect(page.locator("#request-body")).to_contain_text("write to alice@example.com")
    one = httpx.get(
        f"{gateway.url}/admin/requests/{page.evaluate('location.hash').rsplit('/', 1)[1]}",
        headers=ADMIN,
    ).json()
    expect(page.locator("#request-detail")).to_contain_text(f"${float(one['cost_usd']):.6f}")
    shot(page, "request-detail-guardrail")

    page.go_back()
    expect(rows).to_have_count(4)
    rows.filter(has_text="cache hit").locator("a.details").click()
    expect(page.locator("#request-detail")).to_contain_text("HIT")
    hit = httpx.get(
        f"{gateway.url}/admin/requests/{page.evaluate('location.hash').rsplit('/', 1)[1]}",
        headers=ADMIN,
    ).json()
    assert float(hit["cost_saved_usd"]) > 0
    saved = page.locator("#request-detail dt:text-is('saved by the cache') + dd")
    expect(saved).to_have_text(f"${float(hit['cost_saved_usd']):.6f}")
    expect(page.locator("#main .badge.cache-hit")).to_have_text("cache hit")
    expect(page.locator("#request-guardrails")).to_contain_text("No guardrail results")
    shot(page, "request-detail-cache-hit")
    # The key of a request links to the log of that key.
    page.click("#request-key")
    expect(rows).to_have_count(4)
    expect(page.locator("#filter-key")).to_have_value(traffic["logger"])


def test_filters_live_in_the_hash_and_pages(
    page: Page, gateway: GatewayProcess, traffic: dict[str, str]
) -> None:
    total = 4 + PAGER_CALLS
    login(page)
    page.click("nav a[href='#/requests']")
    rows = page.locator("#requests-table tbody tr")
    pager = page.locator("#requests-pager")
    expect(pager).to_contain_text(f"1{DASH}25 of {total}")
    expect(rows).to_have_count(25)
    expect(page.locator("#prev-page")).to_be_disabled()
    page.click("#next-page")
    _settled(page)
    expect(pager).to_contain_text(f"26{DASH}{total} of {total}")
    expect(rows).to_have_count(total - 25)
    assert page.evaluate("location.hash") == "#/requests?offset=25"
    page.reload()
    _settled(page)
    expect(pager).to_contain_text(f"26{DASH}{total} of {total}")
    expect(page.locator("#next-page")).to_be_disabled()

    # A key chosen applies at once and starts again at the first page.
    page.select_option("#filter-key", label="pager")
    _settled(page)
    expect(pager).to_contain_text(f"1{DASH}25 of {PAGER_CALLS}")
    assert page.evaluate("location.hash") == f"#/requests?key={traffic['pager']}"
    page.select_option("#filter-key", "")
    _settled(page)

    # Status: the class typed, applied, kept through a reload.
    page.fill("#filter-status", "4xx")
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("400")
    page.reload()
    _settled(page)
    expect(page.locator("#filter-status")).to_have_value("4xx")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("guardrail deny")
    shot(page, "requests-filtered")

    # A model: exact names only.
    page.click("#clear-filters")
    _settled(page)
    page.fill("#filter-model", "gpt-4o-mini")
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(pager).to_contain_text(f"of {total}")
    page.fill("#filter-model", "gpt-4o")
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(pager).to_contain_text("none match these filters")

    # Cache hits only.
    page.click("#clear-filters")
    _settled(page)
    expect(pager).to_contain_text(f"of {total}")
    page.select_option("#filter-cache-hit", "true")
    _settled(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("cache hit")
    assert "cache_hit=true" in page.evaluate("location.hash")

    # Time: from an hour ahead matches nothing, from an hour ago everything (UTC).
    page.click("#clear-filters")
    _settled(page)
    now = datetime.now(UTC)
    page.fill("#filter-from", (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(pager).to_contain_text("none match these filters")
    expect(rows).to_have_count(1)  # the "Nothing yet." row
    page.fill("#filter-from", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#filter-to", (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(pager).to_contain_text(f"of {total}")
    page.reload()
    _settled(page)
    expect(pager).to_contain_text(f"of {total}")
    expect(page.locator("#filter-to")).not_to_have_value("")

    # A filter the API refuses: its message, naming the parameter.
    page.click("#clear-filters")
    _settled(page)
    page.fill("#filter-status", "abc")
    page.click("#request-filters button[type=submit]")
    _settled(page)
    expect(page.locator("#requests-list .notice.error")).to_contain_text("status")
