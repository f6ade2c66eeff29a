"""Fixtures of the browser tests: a real ``llmrelay serve`` with a master key in front of
the mock upstream, and Debian's Chromium driven by Playwright (headless).

Screenshots go to ``test-artifacts/ui/`` under the repository (gitignored), kept after
the run so a person can look at each page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess
from tests.services import ensure_chromium

MASTER = "sk-master-ui-test-8731"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

# expect()'s own default is 5 s, below the pages' 15 s: on a loaded 2-core host the first
# admin call (which builds the admin app) alone took longer, and a login test failed.
expect.set_options(timeout=15_000)


def gateway_config(upstream: MockUpstream) -> dict[str, Any]:
    """The UI tests' gateway: the master key, and the mock upstream as provider ``up``."""
    return {
        "master_key": MASTER,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret-key-123",
            }
        ],
        "models": [{"name": "gpt-4o-mini", "provider": "up", "model": "gpt-4o-mini"}],
        # The pages call the admin API first thing: built aside at start, as in production.
        "admin": {"warm_up": True},
    }


@pytest.fixture(scope="module")
def gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path_factory.mktemp("ui"), gateway_config(upstream)).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = ensure_chromium()
    browser = playwright.chromium.launch(
        executable_path=executable,
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, gateway: GatewayProcess) -> Iterator[Page]:
    """A fresh browser context (empty sessionStorage) that records what goes wrong."""
    context = browser.new_context(base_url=gateway.url, viewport={"width": 1280, "height": 800})
    # Report every Content-Security-Policy violation: the pages must need no exception.
    context.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.errors = errors  # type: ignore[attr-defined]
    page.dialogs = dialogs  # type: ignore[attr-defined]
    yield page
    violations = page.evaluate("window.__csp || []") if not page.is_closed() else []
    context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"
    assert not errors, f"uncaught errors in the page: {errors}"
    assert not any(d.startswith("alert") for d in dialogs), f"an alert ran: {dialogs}"


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, token: str = MASTER) -> None:
    page.goto("/ui")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
