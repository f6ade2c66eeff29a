"""The web UI's other pages in Chromium: teams, providers (add, test), usage, request
log, budgets, and a key name that is markup rendered as text."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.ui.conftest import MASTER, login, shot

XSS = "<img src=x onerror=alert(1)>"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def test_a_key_named_with_markup_is_text(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    page.fill("#create-key [name=name]", XSS)
    page.click("#create-key button[type=submit]")
    expect(page.locator("#secret-box")).to_contain_text(XSS)
    cell = page.locator("#keys-table .key-name", has_text=XSS)
    expect(cell).to_have_text(XSS)
    assert page.locator("#main img").count() == 0
    # A team named the same: as text in its table and in the keys page's options.
    page.click("nav a[href='#/teams']")
    page.fill("#create-team [name=name]", XSS)
    page.click("#create-team button[type=submit]")
    expect(page.locator("#teams-table td", has_text=XSS)).to_have_text(XSS)
    page.click("nav a[href='#/keys']")
    expect(page.locator("#filter-team option", has_text=XSS)).to_have_count(1)
    assert page.locator("#main img").count() == 0
    shot(page, "keys-xss")
    # The fixture asserts afterwards that no alert() ran and no script error occurred.


def test_teams_create_and_limits(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    page.click("nav a[href='#/teams']")
    page.fill("#create-team [name=name]", "research")
    page.fill("#create-team [name=rate_limit]", "30")
    page.fill("#create-team [name=budget_limit_usd]", "100")
    page.click("#create-team button[type=submit]")
    expect(page.locator("#teams-status")).to_contain_text('Team "research" created.')
    row = page.locator("#teams-table tr", has_text="research")
    expect(row).to_contain_text("$100.00")
    row.locator("button.edit").click()
    page.fill("#limits-form [name=rate_limit]", "45")
    page.fill("#limits-form [name=budget_limit_usd]", "")
    page.click("#limits-form button[type=submit]")
    expect(page.locator("#teams-status")).to_contain_text("saved")
    team = httpx.get(f"{gateway.url}/admin/teams/research", headers=ADMIN).json()
    assert team["rate_limit"] == 45 and team["budget_limit_usd"] is None
    # A duplicate name: the API's message, shown as it is.
    page.fill("#create-team [name=name]", "research")
    page.click("#create-team button[type=submit]")
    dup = httpx.post(f"{gateway.url}/admin/teams", headers=ADMIN, json={"name": "research"})
    assert dup.status_code >= 400
    expect(page.locator("#teams-status .notice.error")).to_have_text(dup.json()["error"]["message"])
    shot(page, "teams")
    # The team is offered on the keys page, and filters the listing.
    page.click("nav a[href='#/keys']")
    page.fill("#create-key [name=name]", "in-research")
    page.select_option("#create-key [name=team]", label="research")
    page.click("#create-key button[type=submit]")
    expect(page.locator("#secret-box")).to_be_visible()
    page.select_option("#filter-team", label="research")
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator("#keys-table tbody tr")).to_contain_text("in-research")


def test_providers_add_and_test(
    page: Page, gateway: GatewayProcess, upstream: MockUpstream
) -> None:
    login(page)
    page.click("nav a[href='#/providers']")
    expect(page.locator("#providers-table tr", has_text="up")).to_contain_text("read-only")
    page.fill("#create-provider [name=name]", "mocked")
    page.select_option("#create-provider [name=type]", "openai_compatible")
    page.fill("#create-provider [name=base_url]", upstream.base_url)
    page.fill("#create-provider [name=api_key]", "sk-mock-provider-secret-0042")
    page.click("#create-provider button[type=submit]")
    expect(page.locator("#providers-status")).to_contain_text('Provider "mocked" added.')
    row = page.locator("#providers-table tr", has_text="mocked")
    expect(row).to_contain_text("openai_compatible")
    assert "sk-mock-provider-secret-0042" not in page.content()
    row.locator("button.test").click()
    expect(row.locator(".test-result .badge")).to_contain_text("OK")
    shot(page, "providers")
    # A body the API refuses: its message, in plain words.
    page.fill("#create-provider [name=name]", "broken")
    page.select_option("#create-provider [name=type]", "openai_compatible")
    page.click("#create-provider button[type=submit]")
    expect(page.locator("#providers-status .notice.error")).to_be_visible()
    said = page.locator("#providers-status .notice.error").text_content() or ""
    assert "base_url" in said, said
    expect(page.locator("#create-provider [name=base_url]")).to_have_attribute(
        "aria-invalid", "true"
    )


def test_calls_show_in_usage_requests_and_budgets(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    page.fill("#create-key [name=name]", "caller")
    page.fill("#create-key [name=budget_limit_usd]", "5")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#secret").text_content() or ""
    for n in range(3):
        r = httpx.post(
            f"{gateway.base_url}/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {n}"}]},
        )
        assert r.status_code == 200, r.text

    usage = _until_counted(gateway, "/admin/usage?by=model", 3)
    page.click("nav a[href='#/usage']")
    if usage is None:
        # This gateway has no usage endpoint yet: the page says so in plain words.
        expect(page.locator("#usage-day .notice.error")).to_contain_text("/admin/usage")
    else:
        expect(page.locator("#chart-usage-day .bar")).to_have_count(1)  # today
        expect(page.locator("#chart-usage-day .bar text.value")).to_have_text(str(usage))
        expect(page.locator("#table-usage-model tr", has_text="gpt-4o-mini")).to_contain_text(
            str(usage)
        )
        # The CSV comes through the authenticated API and is saved as a download.
        with page.expect_download() as caught:
            page.click("#usage-csv")
        download = caught.value
        assert download.suggested_filename == "llmrelay-usage.csv"
        saved = Path(download.path()).read_text(encoding="utf-8")
        since = (datetime.now(UTC).date() - timedelta(days=29)).isoformat()
        api = httpx.get(
            f"{gateway.url}/admin/usage",
            headers=ADMIN,
            params={"group": "day", "from": since, "format": "csv"},
        )
        assert api.status_code == 200 and api.headers["content-type"].startswith("text/csv")
        assert saved == api.text
        rows = list(csv.DictReader(io.StringIO(saved)))
        assert list(rows[0])[:6] == ["period", "key", "team", "model", "provider", "requests"]
        assert sum(int(r["requests"]) for r in rows) == usage
        assert {r["model"] for r in rows} == {"gpt-4o-mini"}
        expect(page.locator("#usage-csv-status")).to_contain_text("llmrelay-usage.csv")
    shot(page, "usage")

    requests = _until_counted(gateway, "/admin/requests", 3)
    page.click("nav a[href='#/requests']")
    if requests is None:
        expect(page.locator("#requests-list .notice.error")).to_contain_text("/admin/requests")
    else:
        rows = page.locator("#requests-table tbody tr", has_text="gpt-4o-mini")
        expect(rows.nth(2)).to_be_visible()  # the three calls (and whatever else ran)
        expect(rows.first).to_contain_text("200")
        page.locator("#requests-table a", has_text="details").first.click()
        expect(page.locator("#request-detail")).to_contain_text("gpt-4o-mini")
        shot(page, "request-detail")
        page.click("#page-requests a[href='#/requests']")
    shot(page, "requests")

    page.click("nav a[href='#/budgets']")
    row = page.locator("#budgets-table tr", has_text="caller")
    budgets = httpx.get(f"{gateway.url}/admin/usage/budgets", headers=ADMIN).json()["data"]
    (mine,) = [b for b in budgets if b["name"] == "caller"]
    assert mine["spent_nanos"] > 0 and mine["limit_state"] == "ok"
    cells = row.locator("td")
    expect(cells.nth(1)).to_have_text("$5.00")  # the budget
    expect(cells.nth(2)).to_have_text(_money(mine["spent_usd"]))  # spent (the 3 calls)
    expect(cells.nth(3)).to_have_text(_money(mine["remaining_usd"]))  # what remains
    expect(cells.nth(4)).to_have_text("ok")
    shot(page, "budgets")


def _money(usd: str) -> str:
    """dom.js's money(): cents, or six decimals for a non-zero amount under a cent."""
    n = float(usd)
    return f"${n:.6f}" if n != 0 and abs(n) < 0.01 else f"${n:.2f}"


def _until_counted(gateway: GatewayProcess, path: str, want: int) -> int | None:
    """The requests the endpoint reports once it counts ``want`` of them (the log writer
    flushes in the background); ``None`` when the gateway has no such endpoint."""
    seen = 0
    for _ in range(100):
        r = httpx.get(f"{gateway.url}{path}", headers=ADMIN)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        body = r.json()
        seen = int(body["totals"]["requests"]) if "totals" in body else int(body["total"])
        if seen >= want:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{path} counted {seen} requests, expected {want}")


def test_logout_forgets_the_token(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    expect(page.locator("#page-keys")).to_be_visible()
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.goto("/ui#/teams")
    expect(page.locator("#login")).to_be_visible()


def test_providers_edit_replace_the_key_and_delete(
    page: Page, gateway: GatewayProcess, upstream: MockUpstream
) -> None:
    first, second = "sk-first-provider-secret-000111", "sk-second-provider-secret-333444"
    made = httpx.post(
        f"{gateway.url}/admin/providers",
        headers=ADMIN,
        json={
            "name": "editable",
            "type": "openai_compatible",
            "base_url": upstream.base_url,
            "api_key": first,
            "models": ["gpt-4o-mini"],
        },
    )
    assert made.status_code == 201, made.text
    login(page)
    page.click("nav a[href='#/providers']")
    # A provider of the YAML file offers no change.
    up = page.locator("#providers-table tbody tr", has_text="read-only")
    expect(up.locator("button.edit")).to_have_count(0)
    row = page.locator("#providers-table tbody tr", has_text="editable")
    row.locator("button.edit").click()
    form = page.locator("#edit-provider")
    # The key field starts empty: the old key is not in the page, only its hint.
    expect(form.locator("[name=api_key]")).to_have_value("")
    expect(form.locator("[name=api_key]")).to_have_attribute("placeholder", re.compile("sk-…0111"))
    expect(form.locator("[name=base_url]")).to_have_value(upstream.base_url)
    assert first not in page.content()

    form.locator("[name=timeout]").fill("30")
    form.locator("[name=api_key]").fill(second)
    form.locator("button[type=submit]").click()
    expect(page.locator("#providers-status")).to_contain_text(
        'Provider "editable" saved (timeout, api_key).'
    )
    stored = httpx.get(f"{gateway.url}/admin/providers/editable", headers=ADMIN).json()
    assert stored["timeout"] == 30 and stored["api_key_hint"] == "sk-…3444"
    assert second not in page.content()
    # The new key is the one the provider now sends upstream.
    row = page.locator("#providers-table tbody tr", has_text="editable")
    row.locator("button.test").click()
    expect(row.locator(".test-result .badge")).to_contain_text("OK")
    sent = [r for r in upstream.requests if r.headers.get("authorization", "").endswith(second)]
    assert sent, "the test call did not carry the replaced key"
    shot(page, "providers-edit")

    # A change the API refuses: its message, and the field it names marked.
    row.locator("button.edit").click()
    page.fill("#edit-provider [name=base_url]", "")
    page.click("#edit-provider button[type=submit]")
    refused = httpx.patch(
        f"{gateway.url}/admin/providers/editable", headers=ADMIN, json={"base_url": None}
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "base_url"
    error = page.locator("#edit-provider-status .notice.error")
    expect(error).to_have_text(refused.json()["error"]["message"])
    expect(page.locator("#edit-provider [name=base_url]")).to_have_attribute("aria-invalid", "true")
    shot(page, "providers-edit-refused")
    unchanged = httpx.get(f"{gateway.url}/admin/providers/editable", headers=ADMIN).json()
    assert unchanged["base_url"] == upstream.base_url

    # Delete asks first (the fixture accepts), then the row and the provider are gone.
    page.locator("#providers-table tbody tr", has_text="editable").locator("button.danger").click()
    expect(page.locator("#providers-status")).to_contain_text('Provider "editable" deleted.')
    expect(page.locator("#providers-table tbody tr", has_text="editable")).to_have_count(0)
    assert any(d.startswith('confirm: Delete provider "editable"') for d in page.dialogs)  # type: ignore[attr-defined]
    gone = httpx.get(f"{gateway.url}/admin/providers/editable", headers=ADMIN)
    assert gone.status_code == 404


def test_teams_members_link_and_delete(page: Page, gateway: GatewayProcess) -> None:
    teams = {}
    for name in ("doomed", "empty"):
        made = httpx.post(f"{gateway.url}/admin/teams", headers=ADMIN, json={"name": name})
        assert made.status_code == 201, made.text
        teams[name] = made.json()["id"]
    key = httpx.post(
        f"{gateway.url}/admin/virtual-keys",
        headers=ADMIN,
        json={"name": "doomed-member", "team": "doomed"},
    ).json()
    login(page)
    page.click("nav a[href='#/teams']")
    row = page.locator("#teams-table tbody tr", has_text="doomed")
    expect(row.locator("a.team-keys")).to_have_text("1")
    # The count links to the keys page filtered by the team, a filter a reload keeps.
    row.locator("a.team-keys").click()
    expect(page.locator("#filter-team")).to_have_value(teams["doomed"])
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator("#keys-table tbody tr")).to_contain_text("doomed-member")
    page.reload()
    expect(page.locator("#filter-team")).to_have_value(teams["doomed"])
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    page.select_option("#filter-team", "")
    assert page.evaluate("location.hash") == "#/keys"

    page.click("nav a[href='#/teams']")
    page.locator("#teams-table tbody tr", has_text="empty").locator("button.danger").click()
    expect(page.locator("#teams-status")).to_contain_text('Team "empty" deleted.')
    # A team with keys: the API refuses, the refusal is asked about, then forced.
    refusal = httpx.delete(f"{gateway.url}/admin/teams/doomed", headers=ADMIN)
    assert refusal.status_code == 409
    page.locator("#teams-table tbody tr", has_text="doomed").locator("button.danger").click()
    expect(page.locator("#teams-status")).to_contain_text('Team "doomed" deleted.')
    asked = [d for d in page.dialogs if refusal.json()["error"]["message"] in d]  # type: ignore[attr-defined]
    assert asked and "Its keys stay, without a team." in asked[0]
    expect(page.locator("#teams-table tbody tr", has_text="doomed")).to_have_count(0)
    kept = httpx.get(f"{gateway.url}/admin/virtual-keys/{key['id']}", headers=ADMIN).json()
    assert kept["name"] == "doomed-member" and kept["team_id"] is None
    shot(page, "teams-deleted")
