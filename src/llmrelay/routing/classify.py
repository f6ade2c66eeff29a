"""What kind of failure an upstream error is, in the words route configs use.

A config says which failures move a fallback on (``on_errors``) and which a target is
retried for (``retry.on_status_codes``). Both are decided here from the one
:class:`~llmrelay.errors.UpstreamError` the attempt raised, so the router never looks
at status codes itself::

    class        matches
    ---------    -------------------------------------------------------------
    timeout      our own timeouts (per target, time to first token, transport)
                 and upstream 408 / 504
    rate_limit   upstream 429 (also a provider's quota 429)
    connection   connection refused / reset, DNS, TLS, a stream that closed empty
    unsupported  the target's provider family cannot serve the call at all (embeddings
                 on Anthropic ...): no upstream call was made; also a 4xx / 400
    5xx, 4xx     any status in the range (our timeouts count as 504, our
                 connection failures as 502, like a reverse proxy would answer)
    <status>     that exact status code (``429`` or ``"429"``)
    *            anything
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmrelay.errors import (
    CapabilityMissing,
    UpstreamAuthenticationFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

#: The error class names a config may use besides status codes.
ERROR_CLASSES = frozenset({"timeout", "rate_limit", "connection", "unsupported", "5xx", "4xx", "*"})


@dataclass(frozen=True, slots=True)
class ErrorMatcher:
    """A parsed ``on_errors`` list: class names plus explicit status codes."""

    classes: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()

    @property
    def any(self) -> bool:
        return "*" in self.classes

    def matches(self, exc: UpstreamError) -> bool:
        if self.any:
            return True
        if exc.status in self.statuses:
            return True
        return bool(self.classes & classes_of(exc))

    def describe(self) -> list[str | int]:
        return [*sorted(self.classes), *sorted(self.statuses)]


MATCH_ANY = ErrorMatcher(classes=frozenset({"*"}))


def classes_of(exc: UpstreamError) -> frozenset[str]:
    """Every class name ``exc`` belongs to."""
    status = exc.status
    found: set[str] = set()
    if isinstance(exc, UpstreamTimeout) or status in (408, 504):
        found.add("timeout")
    if isinstance(exc, UpstreamUnreachable):
        found.add("connection")
    if isinstance(exc, CapabilityMissing):
        found.add("unsupported")
    if status == 429:
        found.add("rate_limit")
    if 500 <= status <= 599:
        found.add("5xx")
    elif 400 <= status <= 499:
        found.add("4xx")
    return frozenset(found)


def upstream_refusal(exc: UpstreamError) -> UpstreamError:
    """An upstream's error answer as the client must see it.

    A 401 from a provider always means llmrelay's own credentials for it were refused
    (clients never send provider credentials): passed on, it would tell the client its
    key is bad. It becomes :class:`UpstreamAuthenticationFailed` (502, not retried,
    counted against the provider's health); every other error is returned unchanged.
    """
    if exc.status == 401:
        return UpstreamAuthenticationFailed(exc.provider or "the provider", exc.message)
    return exc


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The upstream's requested wait: ``retry-after-ms`` first, then ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date (RFC 9110 §10.2.3); a value that is
    neither is ignored rather than trusted.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        return _http_date_delay(raw)
    return seconds if seconds >= 0 else None


def _http_date_delay(raw: str) -> float | None:
    import time
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_error_list(items: Iterable[object]) -> ErrorMatcher:
    """Build a matcher from already validated items (see ``routing.config``)."""
    classes: set[str] = set()
    statuses: set[int] = set()
    for item in items:
        if isinstance(item, int):
            statuses.add(item)
        elif isinstance(item, str) and item.isdigit():
            statuses.add(int(item))
        elif isinstance(item, str):
            classes.add(item)
    return ErrorMatcher(frozenset(classes), frozenset(statuses))
