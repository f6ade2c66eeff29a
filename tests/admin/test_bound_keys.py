"""Bound keys through HTTP: a key with its own provider credential sends its unprefixed
models to its provider, with its credential (not the provider's), scrubbed from the
upstream's errors, with a circuit of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import orjson
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.admin.conftest import MASTER, Admin
from tests.inprocess.app_client import InProcessGateway

SHARED = "shared-provider-credential-0042"
TEAM_CRED = "team-blue-own-credential-9f8e7d"  # no key shape: only the exact net finds it


@pytest.fixture(scope="module")
def strict() -> Iterator[MockUpstream]:
    """A mock that accepts only the shared credential, and quotes any other it gets."""
    mock = MockUpstream(api_key=SHARED)
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, strict: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {
        "master_key": MASTER,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": SHARED,
            },
            {
                "name": "claude",
                "type": "anthropic",
                "base_url": upstream.base_url,
                "api_key": SHARED,
            },
            {
                "name": "strict",
                "type": "openai_compatible",
                "base_url": strict.base_url,
                "api_key": SHARED,
            },
        ],
        "models": [{"name": "gpt-4o-mini", "provider": "strict", "model": "gpt-4o-mini"}],
        "routing": {"circuit_breaker": {"failure_threshold": 3, "window": 60, "cooldown": 60}},
    }
    gateway = InProcessGateway(tmp_path_factory.mktemp("bound"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture(scope="module")
def admin(gw: InProcessGateway) -> Admin:
    return Admin(gw.client, MASTER)


def sdk(gw: InProcessGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://gateway.test/v1", api_key=key, http_client=gw.client, max_retries=0
    )


async def chat(gw: InProcessGateway, key: str, model: str = "gpt-4o-mini") -> Any:
    return await sdk(gw, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )


async def bound(admin: Admin, name: str, provider: str, cred: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "provider": provider}
    if cred is not None:
        body["real_api_key"] = cred
    r = await admin.post("/admin/virtual-keys", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_upstream_receives_the_keys_own_credential(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    made = await bound(admin, "blue-team", "up", TEAM_CRED)
    # "gpt-4o-mini" is configured to go to "strict": the key's provider decides instead.
    answer = await chat(gw, made["virtual_key"])
    assert answer.choices[0].message.content
    assert mock.requests[-1].headers["authorization"] == f"Bearer {TEAM_CRED}"
    await chat(gw, made["virtual_key"], "up/gpt-4o-mini")  # its own provider, prefixed
    assert mock.requests[-1].headers["authorization"] == f"Bearer {TEAM_CRED}"
    # A key of the same provider without its own credential uses the provider's.
    plain = await bound(admin, "plain-bound", "up", None)
    await chat(gw, plain["virtual_key"])
    assert mock.requests[-1].headers["authorization"] == f"Bearer {SHARED}"


async def test_swapping_the_real_key_needs_no_client_change(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    made = await bound(admin, "swapped", "up", "first-credential-aaaa1111")
    await chat(gw, made["virtual_key"])
    assert mock.requests[-1].headers["authorization"] == "Bearer first-credential-aaaa1111"
    r = await admin.put(
        f"/admin/virtual-keys/{made['id']}/rotate", {"new_api_key": "second-credential-bbbb2222"}
    )
    assert r.status_code == 200 and "virtual_key" not in r.json()
    assert "second-credential" not in r.text
    await chat(gw, made["virtual_key"])  # the same virtual key, at once
    assert mock.requests[-1].headers["authorization"] == "Bearer second-credential-bbbb2222"


async def test_a_refused_credential_never_leaves_in_the_error(
    gw: InProcessGateway, admin: Admin, strict: MockUpstream
) -> None:
    made = await bound(admin, "refused", "strict", TEAM_CRED)
    strict.reset()
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(gw, made["virtual_key"])
    assert strict.requests[-1].headers["authorization"] == f"Bearer {TEAM_CRED}"
    assert caught.value.status_code == 502
    text = caught.value.response.text
    assert "Incorrect API key provided" in text and TEAM_CRED not in text
    rows = await gw.wait_rows(
        "SELECT attempts FROM requests WHERE api_key_id = :k", 1, k=made["id"]
    )
    assert TEAM_CRED not in repr(rows)
    # The shared credential still works for everyone else.
    plain = await bound(admin, "strict-plain", "strict", None)
    await chat(gw, plain["virtual_key"])


async def test_a_credential_quoted_mid_stream_is_scrubbed(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    made = await bound(admin, "streamer", "claude", TEAM_CRED)
    mock.script(Behaviour(error_after_chunks=1, error_message=f"the key {TEAM_CRED} is over quota"))
    seen: list[str] = []
    stream = await sdk(gw, made["virtual_key"]).chat.completions.create(
        model="claude-3-5-haiku", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            seen.append(chunk.model_dump_json())
    assert mock.requests[-1].headers["x-api-key"] == TEAM_CRED
    assert "over quota" in str(caught.value)
    assert TEAM_CRED not in str(caught.value) + repr(getattr(caught.value, "body", None))
    assert TEAM_CRED not in "".join(seen)
    rows = await gw.wait_rows(
        "SELECT r.attempts, s.error_message FROM requests r JOIN responses s "
        "ON s.request_id = r.id WHERE r.api_key_id = :k",
        1,
        k=made["id"],
    )
    assert TEAM_CRED not in repr(rows)


FALLBACK = {
    "strategy": "fallback",
    "targets": [
        {"provider": "up", "model": "gpt-4o-mini"},
        {"provider": "strict", "model": "gpt-4o-mini"},
    ],
}


async def routed(gw: InProcessGateway, key: str) -> str:
    """The provider that answered a call routed by :data:`FALLBACK`."""
    client = sdk(gw, key).with_options(
        default_headers={"x-llmrelay-config": orjson.dumps(FALLBACK).decode()}
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["x-llmrelay-provider"]


async def test_one_keys_failures_open_only_its_own_circuit(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    failing = await bound(admin, "failing-team", "up", "failing-team-credential-01")
    healthy = await bound(admin, "healthy-team", "up", "healthy-team-credential-02")
    mock.script(*[Behaviour(status=500)] * 20)
    for _ in range(3):
        assert await routed(gw, failing["virtual_key"]) == "strict"
    assert mock.requests[-1].headers["authorization"] == "Bearer failing-team-credential-01"
    mock.reset()
    # The failing key's circuit is open: its calls skip "up" without asking it...
    assert await routed(gw, failing["virtual_key"]) == "strict"
    assert mock.requests == []
    # ... while another team's key, and the shared credential, still go to "up".
    assert await routed(gw, healthy["virtual_key"]) == "up"
    assert mock.requests[-1].headers["authorization"] == "Bearer healthy-team-credential-02"
    assert await routed(gw, await gw.create_key("shared-user")) == "up"
    assert mock.requests[-1].headers["authorization"] == f"Bearer {SHARED}"
