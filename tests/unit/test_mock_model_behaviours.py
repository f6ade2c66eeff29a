"""The mock upstream's failure injection by model name (``model_behaviours``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from llmrelay.mock_upstream import Behaviour, MockUpstream


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    behaviours = {"missing-*": Behaviour(status=404), "broken-*": {"drop_after_chunks": 1}}
    with MockUpstream(models=["ok", "missing-x"], model_behaviours=behaviours) as m:
        yield m


def _chat(mock: MockUpstream, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(mock.base_url + "/chat/completions", json=body, timeout=10)


def test_a_matching_model_fails_in_the_providers_shape(mock: MockUpstream) -> None:
    assert _chat(mock, "ok").status_code == 200
    refused = _chat(mock, "missing-x")
    assert refused.status_code == 404 and "error" in refused.json()
    anthropic = httpx.post(
        mock.root_url + "/v1/messages",
        json={
            "model": "missing-x",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert anthropic.status_code == 404 and anthropic.json()["type"] == "error"


def test_a_stream_knob_applies_to_streams_only(mock: MockUpstream) -> None:
    assert _chat(mock, "broken-y").status_code == 200
    body = {"model": "broken-y", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    text = ""
    try:
        with httpx.stream("POST", mock.base_url + "/chat/completions", json=body, timeout=10) as r:
            for chunk in r.iter_text():
                text += chunk
    except httpx.HTTPError:
        pass  # the mock closes the socket mid-body
    assert text.startswith("data: ") and "[DONE]" not in text


def test_header_and_queue_win_and_listing_is_untouched(mock: MockUpstream) -> None:
    mock.script(Behaviour(reply="queued"))
    assert _chat(mock, "missing-x").json()["choices"][0]["message"]["content"] == "queued"
    assert httpx.get(mock.base_url + "/models", timeout=10).status_code == 200
