"""Why a probe call failed, in the words of the seed's failure table.

A reason is a short stable name (stored in history, counted in reports) with a label
for the table; the gateway's own error ``code`` refines the status where the status
alone would mislead (a provider refusing the gateway's credentials is a 502 from
llmrelay, but the table's "401 bad key" row is what the operator must act on).
"""

from __future__ import annotations

#: reason -> the label shown in the table (the seed's "Common Failure Reasons").
LABELS: dict[str, str] = {
    "auth": "401 bad key",
    "not_found": "404 model not available",
    "bad_request": "400 bad parameters",
    "rate_limited": "429 rate limited",
    "server_error": "5xx server error",
    "unavailable": "503 service unavailable",
    "timeout": "timeout",
    "broken_stream": "broken stream",
    "bad_answer": "no usable answer",
    "unreachable": "gateway unreachable",
}

_AUTH_CODES = frozenset({"upstream_authentication_failed", "invalid_api_key"})
_TIMEOUT_CODES = frozenset({"upstream_timeout", "deadline_exceeded", "timeout"})
_NOT_FOUND_CODES = frozenset({"model_not_found", "unknown_model"})


def classify_status(status: int, code: str | None = None) -> str:
    """The reason for an error answer with ``status`` and the error's ``code``."""
    if status in (401, 403) or code in _AUTH_CODES:
        return "auth"
    if status == 404 or code in _NOT_FOUND_CODES:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status in (408, 504) or code in _TIMEOUT_CODES:
        return "timeout"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "server_error"
    return "bad_request"


def label(reason: str | None) -> str:
    """The table's words for ``reason``."""
    return LABELS.get(reason or "", reason or "")
