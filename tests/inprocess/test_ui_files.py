"""``/ui``: the web UI's files as the gateway serves them (headers, caching, refusals)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from llmrelay.ui.serve import CSP, load_assets
from tests.inprocess.app_client import InProcessGateway


def _static(name: str) -> bytes:
    return (files("llmrelay.ui") / "static" / name).read_bytes()


@pytest.mark.parametrize(
    ("path", "file", "kind"),
    [
        ("/ui", "index.html", "text/html; charset=utf-8"),
        ("/ui/", "index.html", "text/html; charset=utf-8"),
        ("/ui/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/ui/pages/keys.js", "pages/keys.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "style.css", "text/css; charset=utf-8"),
    ],
)
async def test_files_with_their_type_and_strict_headers(
    gw: InProcessGateway, path: str, file: str, kind: str
) -> None:
    r = await gw.client.get(path)
    assert r.status_code == 200
    assert r.content == _static(file)
    assert r.headers["content-type"] == kind
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["etag"].startswith('"')


async def test_etag_revalidates_with_304(gw: InProcessGateway) -> None:
    first = await gw.client.get("/ui/app.js")
    again = await gw.client.get("/ui/app.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = await gw.client.get("/ui/app.js", headers={"if-none-match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content
    head = await gw.client.head("/ui/app.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/../pyproject.toml",
        "/ui/%2e%2e/serve.py",
        "/ui/..%2fserve.py",
        "/ui//etc/passwd",
        "/ui/pages/../../serve.py",
        "/ui/serve.py",
        "/ui/__init__.py",
    ],
)
async def test_unknown_files_are_404_in_the_error_shape(gw: InProcessGateway, path: str) -> None:
    r = await gw.client.get(path)
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["error"]["code"] == "not_found"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "import" not in r.text


async def test_only_get_and_head(gw: InProcessGateway) -> None:
    r = await gw.client.post("/ui/app.js", content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_the_prefix_is_a_whole_segment(gw: InProcessGateway) -> None:
    r = await gw.client.get("/uix")
    assert r.status_code == 404
    assert "content-security-policy" not in r.headers  # the proxy's own 404


def test_pages_have_no_inline_script_or_foreign_source() -> None:
    """The CSP would block these anyway; the test keeps them from being written."""
    html = _static("index.html").decode()
    assert "<script>" not in html and " on" not in html.split("<body>")[1].replace("\n", "")
    assets = load_assets()
    scripts = [name for name in assets if name.endswith(".js")]
    assert {"app.js", "api.js", "dom.js", "chart.js", "pages/keys.js"} <= set(scripts)
    for name in scripts:
        text = assets[name].body.decode()
        for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (name, sink)
        assert "https://" not in text and "//cdn" not in text, name
