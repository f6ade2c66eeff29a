"""Vertex access tokens: minted by google-auth from a generated service-account key
against the mock's token endpoint (which verifies the JWT signature), cached until
near expiry, single-flighted, re-minted after the provider refuses one."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from llmrelay.errors import UpstreamError
from llmrelay.mock_upstream import MockUpstream
from llmrelay.providers.google_auth import GoogleTokenSource, load_credentials
from tests.native_providers import service_account_file


def token_calls(mock: MockUpstream) -> int:
    return sum(1 for r in mock.requests if r.path == "/token")


async def test_tokens_are_minted_once_and_cached(mock: MockUpstream, tmp_path: Path) -> None:
    source = GoogleTokenSource(
        "vertex", load_credentials(str(service_account_file(mock, tmp_path)))
    )
    tokens = await asyncio.gather(*(source.token() for _ in range(5)))
    assert len(set(tokens)) == 1 and tokens[0].startswith("ya29.mock-")
    assert token_calls(mock) == 1
    assert await source.token() == tokens[0] and token_calls(mock) == 1
    source.invalidate()
    assert await source.token() != tokens[0] and token_calls(mock) == 2


async def test_a_token_near_expiry_is_refreshed(mock: MockUpstream, tmp_path: Path) -> None:
    credentials = load_credentials(str(service_account_file(mock, tmp_path)))
    source = GoogleTokenSource("vertex", credentials)
    first = await source.token()
    credentials.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=2)
    assert await source.token() != first and token_calls(mock) == 2


async def test_a_key_the_endpoint_does_not_trust_is_a_401(
    mock: MockUpstream, tmp_path: Path
) -> None:
    path = service_account_file(mock, tmp_path)
    info = json.loads(path.read_text())
    info["private_key_id"] = "unregistered-key"
    path.write_text(json.dumps(info))
    source = GoogleTokenSource("vertex", load_credentials(str(path)))
    with pytest.raises(UpstreamError) as exc:
        await source.token()
    assert exc.value.status == 401
    assert "Invalid JWT Signature" in exc.value.message
    assert "PRIVATE KEY" not in exc.value.message
