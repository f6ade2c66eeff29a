"""``/ui``: the web UI's files, served from the package with strict browser headers.

The files are read once, on the first ``/ui`` request, into a table keyed by their
path under ``static/``; a request is answered only from that table, so no part of the
URL ever reaches the file system and path traversal has nothing to walk. Each answer
carries a strong ``ETag`` (``If-None-Match`` gives a ``304``) and ``no-cache``, so a
browser revalidates after an upgrade instead of running stale modules, and a strict
Content-Security-Policy: only the gateway's own scripts, styles and API, no inline
script, no framing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from llmrelay.asgi import RawHeaders, Receive, Scope, Send, send_error
from llmrelay.errors import MethodNotAllowed, NotFound

PREFIX = "/ui"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

#: Content types by suffix; a file of any other suffix is not served.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}

SECURITY_HEADERS: RawHeaders = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: bytes


def _walk(folder: Traversable, prefix: str) -> dict[str, Asset]:
    table: dict[str, Asset] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            table.update(_walk(entry, f"{name}/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        kind = TYPES.get(suffix)
        if kind is None:
            continue
        body = entry.read_bytes()
        tag = hashlib.sha256(body).hexdigest()[:32]
        table[name] = Asset(body, kind.encode(), f'"{tag}"'.encode())
    return table


def load_assets() -> dict[str, Asset]:
    """Every servable file of ``llmrelay/ui/static``, by its path there."""
    return _walk(files("llmrelay.ui") / "static", "")


class UiFiles:
    """ASGI handler of ``/ui`` and ``/ui/...``; the table is built on first use."""

    def __init__(self) -> None:
        self._assets: dict[str, Asset] | None = None

    @property
    def assets(self) -> dict[str, Asset]:
        if self._assets is None:
            self._assets = load_assets()
        return self._assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        name = path[len(PREFIX) :].lstrip("/") or "index.html"
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            wrong = MethodNotAllowed(f"{path} expects GET, not {method}")
            await send_error(send, wrong, [(b"allow", b"GET, HEAD"), *SECURITY_HEADERS])
            return
        asset = self.assets.get(name)
        if asset is None:
            await send_error(send, NotFound(f"no UI file {path}"), SECURITY_HEADERS)
            return
        headers: RawHeaders = [
            (b"etag", asset.etag),
            (b"cache-control", b"no-cache"),
            *SECURITY_HEADERS,
        ]
        if _matches(scope, asset.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        start = [
            (b"content-type", asset.content_type),
            (b"content-length", str(len(asset.body)).encode()),
            *headers,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        body = b"" if method == "HEAD" else asset.body
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _matches(scope: Scope, etag: bytes) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"if-none-match":
            return value.strip() == b"*" or etag in (v.strip() for v in value.split(b","))
    return False
