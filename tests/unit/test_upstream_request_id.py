"""The provider's request id, read from its response headers and passed on."""

from __future__ import annotations

import pytest

from llmrelay.upstream import upstream_request_id


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "req_openai"}, "req_openai"),
        ({"request-id": "req_011CAnthropic"}, "req_011CAnthropic"),
        ({"x-amzn-requestid": "3f1c-bedrock"}, "3f1c-bedrock"),
        ({"apim-request-id": "azure-1"}, "azure-1"),
        ({"request-id": "second", "x-request-id": "first"}, "first"),  # a fixed order
        ({}, None),
        ({"x-request-id": ""}, None),
    ],
)
def test_known_headers(headers: dict[str, str], expected: str | None) -> None:
    assert upstream_request_id(headers) == expected


@pytest.mark.parametrize("bad", ["a\r\nx-injected: 1", "x" * 201, "ünïcode", "tab\there"])
def test_values_that_could_not_be_relayed_are_dropped(bad: str) -> None:
    assert upstream_request_id({"x-request-id": bad}) is None
    assert upstream_request_id({"x-request-id": bad, "request-id": "ok"}) == "ok"
