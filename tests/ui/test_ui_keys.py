"""The web UI in Chromium against a real gateway: log in, then the keys page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, expect

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.ui.conftest import MASTER, login, shot


def test_wrong_token_shows_the_apis_message(page: Page, gateway: GatewayProcess) -> None:
    login(page, "sk-not-the-master-key")
    error = page.locator("#login-status .notice.error")
    expect(error).to_be_visible()
    refusal = httpx.get(
        f"{gateway.url}/admin/virtual-keys",
        headers={"authorization": "Bearer sk-not-the-master-key"},
    )
    assert refusal.status_code == 401
    expect(error).to_have_text(refusal.json()["error"]["message"])
    assert page.evaluate("sessionStorage.length") == 0
    shot(page, "login-refused")


def test_create_rotate_disable_a_key(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    expect(page.locator("#page-keys h1")).to_have_text("Virtual keys")
    assert page.evaluate("Object.values(sessionStorage)") == [MASTER]
    page.fill("#create-key [name=name]", "ui-first")
    page.fill("#create-key [name=rate_limit]", "60")
    page.fill("#create-key [name=budget_limit_usd]", "12.5")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#secret").text_content() or ""
    assert secret.startswith("vk-"), secret
    row = page.locator("#keys-table tr", has_text="ui-first")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("$12.50")
    shot(page, "keys-created")
    # The secret works against the proxy, and is not shown again after a reload.
    ok = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200, ok.text
    page.reload()
    expect(page.locator("#keys-table tr", has_text="ui-first")).to_be_visible()
    assert page.locator("#secret").count() == 0
    assert secret not in page.content()

    row = page.locator("#keys-table tr", has_text="ui-first")
    row.locator("button.rotate").click()
    # Not bound to a provider: only the secret can be rotated.
    expect(page.locator("#rotate-real-form")).to_have_count(0)
    page.click("#rotate-secret")
    expect(page.locator("#secret-box")).to_contain_text("rotated")
    rotated = page.locator("#secret").text_content() or ""
    assert rotated.startswith("vk-") and rotated != secret
    old = httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {secret}"})
    assert old.status_code == 401
    assert any("The old one stops working at once" in d for d in page.dialogs)  # type: ignore[attr-defined]

    # With a grace period the previous secret keeps working beside the new one.
    page.locator("#keys-table tr", has_text="ui-first").locator("button.rotate").click()
    page.select_option("#rotate-secret-form [name=grace_seconds]", "3600")
    page.click("#rotate-secret")
    expect(page.locator("#secret-box")).to_contain_text("rotated")
    newest = page.locator("#secret").text_content() or ""
    assert newest.startswith("vk-") and newest not in (secret, rotated)
    assert any("keeps working for 1 hour" in d for d in page.dialogs)  # type: ignore[attr-defined]
    for works in (rotated, newest):
        ok = httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {works}"})
        assert ok.status_code == 200, ok.text

    page.locator("#keys-table tr", has_text="ui-first").locator("button.toggle").click()
    expect(page.locator("#keys-table tr", has_text="ui-first")).to_contain_text("disabled")
    for both in (rotated, newest):
        refused = httpx.get(
            f"{gateway.base_url}/models", headers={"authorization": f"Bearer {both}"}
        )
        assert refused.status_code == 401
    page.select_option("#filter-status", "disabled")
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    shot(page, "keys-disabled")

    # Enabled again: the newest secret works again; then deleted, after a confirmation.
    page.select_option("#filter-status", "")
    row = page.locator("#keys-table tr", has_text="ui-first")
    row.locator("button.toggle").click()
    expect(page.locator("#keys-status")).to_contain_text('Key "ui-first" enabled.')
    expect(page.locator("#keys-table tr", has_text="ui-first")).to_contain_text("active")
    back = httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {newest}"})
    assert back.status_code == 200, back.text
    page.locator("#keys-table tr", has_text="ui-first").locator("button.danger").click()
    expect(page.locator("#keys-status")).to_contain_text('Key "ui-first" deleted.')
    expect(page.locator("#keys-table tr", has_text="ui-first")).to_have_count(0)
    assert any(d.startswith('confirm: Delete "ui-first"?') for d in page.dialogs)  # type: ignore[attr-defined]
    gone = httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {newest}"})
    assert gone.status_code == 401


def test_login_page(page: Page) -> None:
    page.goto("/ui")
    expect(page.locator("#login h1")).to_have_text("Log in")
    expect(page.locator("#nav")).to_be_hidden()
    shot(page, "login")


def _upstream_key(gateway: GatewayProcess, upstream: MockUpstream, secret: str) -> str:
    """The credential the mock upstream received for one call made with ``secret``."""
    ok = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "which key?"}]},
    )
    assert ok.status_code == 200, ok.text
    return upstream.last_request.headers["authorization"].removeprefix("Bearer ")


def test_bound_key_copy_and_limits(
    page: Page, gateway: GatewayProcess, upstream: MockUpstream
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page)
    page.fill("#create-key [name=name]", "bound")
    page.fill("#create-key [name=provider]", "up")
    page.fill("#create-key [name=real_api_key]", "sk-real-upstream-credential-7788")
    page.fill("#create-key [name=tpm_limit]", "1000")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#secret").text_content() or ""
    page.click("#copy-secret")
    expect(page.locator("#secret-box")).to_contain_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator("#keys-table tr", has_text="bound")
    expect(row).to_contain_text("up")
    expect(row).to_contain_text("1000")
    assert "sk-real-upstream-credential-7788" not in page.content()
    assert _upstream_key(gateway, upstream, secret) == "sk-real-upstream-credential-7788"

    # Replacing the bound real key: the virtual key stays, the upstream sees the new one.
    row.locator("button.rotate").click()
    expect(page.locator("#rotate-real-form")).to_contain_text("A real key is set")
    page.fill("#rotate-real-form [name=new_api_key]", "sk-real-upstream-credential-9900")
    page.click("#rotate-real")
    expect(page.locator("#keys-status .notice.ok")).to_contain_text("its virtual key is unchanged")
    assert "sk-real-upstream-credential-9900" not in page.content()
    assert _upstream_key(gateway, upstream, secret) == "sk-real-upstream-credential-9900"
    shot(page, "keys-real-key-replaced")

    row.locator("button.edit").click()
    expect(page.locator("#limits-form [name=tpm_limit]")).to_have_value("1000")
    page.fill("#limits-form [name=tpm_limit]", "")
    page.fill("#limits-form [name=rate_limit]", "7")
    page.click("#limits-form button[type=submit]")
    expect(page.locator("#keys-status")).to_contain_text('Limits of "bound" saved.')
    row = page.locator("#keys-table tr", has_text="bound")
    expect(row).to_contain_text("7")
    keys = httpx.get(
        f"{gateway.url}/admin/virtual-keys", headers={"authorization": f"Bearer {MASTER}"}
    ).json()["data"]
    (key,) = [k for k in keys if k["name"] == "bound"]
    assert key["rate_limit"] == 7 and key["tpm_limit"] is None and key["has_real_api_key"]

    # A limit the API refuses: its message as the page's error.
    row.locator("button.edit").click()
    page.fill("#limits-form [name=rate_limit]", "0")
    page.click("#limits-form button[type=submit]")
    expect(page.locator("#limits-form .notice.error")).to_contain_text("rate_limit")
    shot(page, "keys-limits")


def test_a_viewer_token_browses_and_is_told_why_it_cannot_change(
    page: Page, gateway: GatewayProcess
) -> None:
    made = httpx.post(
        f"{gateway.url}/admin/tokens",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"name": "ui-viewer", "role": "viewer"},
    )
    assert made.status_code == 201, made.text
    viewer = made.json()["token"]
    login(page, viewer)
    expect(page.locator("#keys-table")).to_be_visible()
    page.fill("#create-key [name=name]", "by-viewer")
    page.click("#create-key button[type=submit]")
    refused = httpx.post(
        f"{gateway.url}/admin/virtual-keys",
        headers={"authorization": f"Bearer {viewer}"},
        json={"name": "by-viewer"},
    )
    assert refused.status_code == 403
    expect(page.locator("#keys-status .notice.error")).to_have_text(
        refused.json()["error"]["message"]
    )
    assert page.locator("#keys-table tr", has_text="by-viewer").count() == 0


def test_key_expiry_set_shown_and_filtered(page: Page, gateway: GatewayProcess) -> None:
    login(page)
    now = datetime.now(UTC)
    later = (now + timedelta(days=2)).replace(second=0, microsecond=0)
    for name, when in (("expires-later", later), ("expired-already", now - timedelta(hours=1))):
        page.fill("#create-key [name=name]", name)
        page.fill("#create-key [name=expires_at]", when.strftime("%Y-%m-%dT%H:%M"))
        page.click("#create-key button[type=submit]")
        expect(page.locator("#secret-box")).to_contain_text(f'Key "{name}" created.')
        secret = page.locator("#secret").text_content() or ""
        answer = httpx.get(
            f"{gateway.base_url}/models", headers={"authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == (200 if name == "expires-later" else 401), answer.text
    keys = httpx.get(
        f"{gateway.url}/admin/virtual-keys", headers={"authorization": f"Bearer {MASTER}"}
    ).json()["data"]
    (stored,) = [k for k in keys if k["name"] == "expires-later"]
    assert datetime.fromisoformat(stored["expires_at"]) == later  # read as UTC
    row = page.locator("#keys-table tr", has_text="expires-later")
    expect(row).to_contain_text(later.strftime("%Y-%m-%d %H:%M"))
    expect(row.locator(".badge")).to_have_text("active")
    expect(
        page.locator("#keys-table tr", has_text="expired-already").locator(".badge")
    ).to_have_text("expired")
    page.select_option("#filter-status", "expired")
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator("#keys-table tbody tr")).to_contain_text("expired-already")
    shot(page, "keys-expired")
