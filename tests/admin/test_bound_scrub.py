"""A bound key's own credential never leaves in an error: the mock upstream quotes it in
a JSON error and in a mid-stream error event, for chat completions, messages and
responses (passed through and translated), streamed and not; the client's answer and the
stored rows hold the message without it. After a rotation of the credential, the new one
is used and both are scrubbed; credentials that providers reloaded at run time bring are
scrubbed from an existing binding's errors too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream
from tests.admin.conftest import MASTER, Admin
from tests.inprocess.app_client import InProcessGateway
from tests.inprocess.conftest import base_config

#: No key shape: only the exact net (the binding's redactor) can find these.
CRED = "team-green-own-credential-4c3b2a"
ROTATED = "team-green-rotated-credential-77e1"
RELOADED = "reloaded-provider-credential-0a9f"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
async def gw(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    config: dict[str, Any] = {**base_config(upstream), "master_key": MASTER}
    config["providers"] = [
        *config["providers"],
        # Type openai: /v1/responses is passed through (response.failed, error events).
        {"name": "oai", "type": "openai", "base_url": upstream.base_url, "api_key": "sk-oai-1"},
    ]
    gateway = InProcessGateway(tmp_path_factory.mktemp("bound-scrub"), config)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def bound(admin: Admin, name: str, provider: str, cred: str = CRED) -> dict[str, Any]:
    r = await admin.post(
        "/admin/virtual-keys", {"name": name, "provider": provider, "real_api_key": cred}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


#: (endpoint, bound provider, model, body without model/stream)
CASES = [
    ("/v1/chat/completions", "up", "gpt-4o-mini", {"messages": USER}),
    ("/v1/messages", "claude", "claude-3-5-haiku", {"messages": USER, "max_tokens": 20}),
    ("/v1/messages", "up", "gpt-4o-mini", {"messages": USER, "max_tokens": 20}),
    ("/v1/responses", "oai", "gpt-4o-mini", {"input": "hi"}),
    ("/v1/responses", "claude", "claude-3-5-haiku", {"input": "hi"}),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
async def test_the_bound_credential_is_scrubbed_from_every_error(
    gw: InProcessGateway,
    admin: Admin,
    mock: MockUpstream,
    case: tuple[str, str, str, dict[str, Any]],
    stream: bool,
) -> None:
    path, provider, model, body = case
    made = await bound(admin, f"scrub-{path[4:]}-{provider}-{stream}", provider)
    quoted = f"the key {CRED} is over its quota"
    if stream:
        mock.script(Behaviour(error_after_chunks=2, error_message=quoted))
    else:
        mock.script(Behaviour(status=400, error_message=quoted))  # 400: not retried
    r = await gw.post(path, {**body, "model": model, "stream": stream}, key=made["virtual_key"])
    seen = mock.requests[-1].headers
    assert CRED in seen.get("authorization", "") + seen.get("x-api-key", "")
    assert "over its quota" in r.text, r.text
    assert CRED not in r.text
    assert r.status_code == (200 if stream else 400)
    rows = await gw.wait_rows(
        "SELECT r.attempts, s.error_message, s.body FROM requests r JOIN responses s "
        "ON s.request_id = r.id WHERE r.api_key_id = :k",
        1,
        k=made["id"],
    )
    assert "over its quota" in repr(rows) and CRED not in repr(rows)
    assert CRED not in gw.log_file.read_text()


async def test_a_rotated_credential_is_used_and_both_are_scrubbed(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream
) -> None:
    made = await bound(admin, "rotating", "up")
    key = made["virtual_key"]
    chat = {"model": "gpt-4o-mini", "messages": USER}
    assert (await gw.post("/v1/chat/completions", chat, key=key)).status_code == 200
    assert mock.requests[-1].headers["authorization"] == f"Bearer {CRED}"
    r = await admin.put(f"/admin/virtual-keys/{made['id']}/rotate", {"new_api_key": ROTATED})
    assert r.status_code == 200 and ROTATED not in r.text
    # An upstream quoting both the credential it got and the one before it.
    mock.script(Behaviour(status=401, error_message=f"got {ROTATED}; {CRED} was revoked"))
    r = await gw.post("/v1/chat/completions", chat, key=key)
    assert mock.requests[-1].headers["authorization"] == f"Bearer {ROTATED}"
    assert "was revoked" in r.text and ROTATED not in r.text and CRED not in r.text
    mock.script(Behaviour(error_after_chunks=1, error_message=f"{ROTATED} / {CRED} over quota"))
    r = await gw.post(
        "/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}, key=key
    )
    assert "over quota" in r.text and ROTATED not in r.text and CRED not in r.text


async def test_credentials_of_reloaded_providers_are_scrubbed_from_bound_errors(
    gw: InProcessGateway, admin: Admin, mock: MockUpstream, upstream: MockUpstream
) -> None:
    made = await bound(admin, "before-reload", "up")
    key = made["virtual_key"]
    chat = {"model": "gpt-4o-mini", "messages": USER}
    assert (await gw.post("/v1/chat/completions", chat, key=key)).status_code == 200  # bound
    # A provider added at run time (the change feed reloads the registry) holds a
    # credential the binding made above never saw.
    r = await admin.post(
        "/admin/providers",
        {
            "name": "added",
            "type": "openai_compatible",
            "base_url": upstream.base_url,
            "api_key": RELOADED,
        },
    )
    assert r.status_code == 201, r.text
    mock.script(Behaviour(status=400, error_message=f"{CRED} and {RELOADED} in one message"))
    r = await gw.post("/v1/chat/completions", chat, key=key)
    assert "in one message" in r.text and CRED not in r.text and RELOADED not in r.text
    # A key bound to the added provider, whose credential then changes (PATCH reloads).
    other = await bound(admin, "on-added", "added", ROTATED)
    assert (
        await gw.post("/v1/chat/completions", chat, key=other["virtual_key"])
    ).status_code == 200
    assert mock.requests[-1].headers["authorization"] == f"Bearer {ROTATED}"
    fresh = RELOADED + "-2"
    r = await admin.patch("/admin/providers/added", {"api_key": fresh, "timeout": 30})
    assert r.status_code == 200, r.text
    assert (await admin.post("/admin/providers/reload", {})).status_code == 200
    mock.script(Behaviour(status=400, error_message=f"{fresh} {ROTATED} quoted"))
    r = await gw.post("/v1/chat/completions", chat, key=other["virtual_key"])
    assert mock.requests[-1].headers["authorization"] == f"Bearer {ROTATED}"  # still its own
    assert "quoted" in r.text and fresh not in r.text and ROTATED not in r.text


def test_a_passed_through_response_failed_event_is_scrubbed_with_the_keys_credential() -> None:
    """``response.failed`` goes out as an upstream event (not the relay's error event):
    the target's redactor, which holds the bound credential, scrubs it."""
    from types import SimpleNamespace

    from llmrelay.api.responses import ResponsesCodec
    from llmrelay.redaction import Redactor
    from llmrelay.routing.resolve import Target

    gateway = Redactor(["configured-provider-secret-1"])
    codec = ResponsesCodec(gateway.text)
    provider: Any = SimpleNamespace(name="oai")
    target = Target(provider, "gpt-4o-mini", scope="k", redactor=gateway.with_secrets([CRED]))
    relay = codec.translator(SimpleNamespace(passthrough=True), target)  # type: ignore[arg-type]
    event = (
        b'event: response.failed\ndata: {"type": "response.failed", "response": {"status": '
        b'"failed", "error": {"message": "key ' + CRED.encode() + b" configured-provider-"
        b'secret-1 refused"}}}\n\n'
    )
    out = b"".join(relay.feed(event)).decode()
    assert "refused" in out and CRED not in out and "configured-provider-secret-1" not in out
