"""CORS for the proxy routes: preflights answered, allowed origins named in answers.

Browser applications call gateways directly (a chat front end with a per-user virtual
key), and a browser sends an ``OPTIONS`` preflight before any call that carries an
``Authorization`` header or a JSON body. With ``cors_origins`` empty (the default) the
gateway says nothing about CORS, so browsers refuse cross-origin calls, as before.

The rules are the Fetch standard's, kept small:

- an origin is allowed when it equals an entry (scheme, host and port, compared
  case-insensitively), when an entry is ``*``, or when an entry such as
  ``https://*.example.com`` names its parent domain;
- a preflight from an allowed origin gets ``204`` with the methods of the route, the
  headers the browser asked for (when they are plain header names) and ``max-age``; one
  from any other origin gets ``403`` in the endpoint's error shape and no CORS headers;
- an actual call from an allowed origin gets ``access-control-allow-origin`` and the
  response headers a client may read (request id, cache, cost, rate limits).

Credentials (cookies) are never allowed: the gateway authenticates by header, and a
``*`` entry with credentials would hand every site the caller's session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmrelay.asgi import Message, Scope, Send

#: Response headers a browser script may read from a cross-origin answer.
EXPOSED = (
    b"x-request-id, x-llmrelay-provider, x-llmrelay-model, x-llmrelay-attempts, "
    b"x-llmrelay-cost-usd, x-llmrelay-overhead-ms, x-llmrelay-overhead-breakdown, "
    b"x-llmrelay-cache, "
    b"x-llmrelay-cache-age, x-llmrelay-cache-similarity, x-llmrelay-guardrails, "
    b"x-llmrelay-guardrails-ms, x-llmrelay-upstream-request-id, retry-after, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
    b"x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "
    b"x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"
)

#: Headers allowed when a preflight names none or names one that is not a plain token.
DEFAULT_HEADERS = (
    b"authorization, content-type, x-api-key, anthropic-version, anthropic-beta, "
    b"x-llmrelay-config, x-portkey-config, x-stainless-os, x-stainless-lang, "
    b"x-stainless-arch, x-stainless-runtime, x-stainless-runtime-version, "
    b"x-stainless-package-version, x-stainless-retry-count, x-stainless-timeout"
)

_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
#: A preflight's header list longer than this is answered with the default list.
_MAX_HEADER_LIST = 2000
_ORIGIN = re.compile(r"^(https?)://(\*\.)?([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$")


def check_origin(entry: str) -> str | None:
    """Why a ``cors_origins`` entry is wrong, or ``None`` when it is a usable origin."""
    if entry == "*":
        return None
    if not _ORIGIN.match(entry.lower()):
        return (
            f"{entry!r} is not an origin: write scheme://host[:port] with no path "
            "(https://app.example.com, https://*.example.com or *)"
        )
    return None


class CorsPolicy:
    """Which origins may call, and the headers that tell a browser so."""

    def __init__(self, origins: Sequence[str], max_age: int) -> None:
        self.any = "*" in origins
        self.exact = frozenset(o.lower().rstrip("/") for o in origins if "*." not in o)
        #: ``https://*.example.com`` -> (``https``, ``.example.com``, port part).
        self.suffixes = tuple(_suffix(o.lower()) for o in origins if "*." in o)
        self.max_age = str(max_age).encode()

    def allows(self, origin: str) -> bool:
        if self.any:
            return True
        origin = origin.lower()
        if origin in self.exact:
            return True
        match = _ORIGIN.match(origin)
        if match is None or match.group(2):
            return False
        scheme, host, port = match.group(1), match.group(3), match.group(4) or ""
        return any(
            scheme == s and host.endswith(suffix) and port == p for s, suffix, p in self.suffixes
        )

    def allow_origin(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """Headers of an answer to an allowed origin (``*`` echoes nothing personal)."""
        if self.any:
            return [(b"access-control-allow-origin", b"*")]
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]

    def preflight(self, origin: bytes, method: str, requested: bytes) -> list[tuple[bytes, bytes]]:
        """Headers of a ``204`` preflight answer for a route served with ``method``."""
        text = requested.decode("latin-1").strip()
        allowed = (
            requested.strip()
            if text and len(text) <= _MAX_HEADER_LIST and _HEADER_LIST.match(text)
            else DEFAULT_HEADERS
        )
        return [
            *self.allow_origin(origin),
            (b"access-control-allow-methods", f"{method}, OPTIONS".encode()),
            (b"access-control-allow-headers", allowed),
            (b"access-control-max-age", self.max_age),
            (b"vary", b"access-control-request-headers"),
        ]

    def wrap(self, origin: bytes, send: Send) -> Send:
        """``send`` with the allow-origin and expose headers added to the answer's start."""
        extra = [*self.allow_origin(origin), (b"access-control-expose-headers", EXPOSED)]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        return send_with_cors


def _suffix(entry: str) -> tuple[str, str, str]:
    match = _ORIGIN.match(entry)
    assert match is not None  # checked when the settings were loaded
    return match.group(1), "." + match.group(3), match.group(4) or ""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (names in ASGI scopes are lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
