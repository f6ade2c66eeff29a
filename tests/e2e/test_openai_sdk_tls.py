"""The official ``openai`` SDK through a gateway whose upstream is on ``https://``.

Every real provider is reached over TLS, so this is their path end to end: the mock
upstream serves a certificate from a throwaway CA that the gateway trusts through
``SSL_CERT_FILE`` (an operator's own CA bundle the same way), non-streamed and streamed
answers come through the lean client's TLS connections, and an upstream whose
certificate comes from a CA nobody trusts is a clear 502, with no key in the message.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llmrelay.mock_upstream import MockUpstream
from llmrelay.mock_upstream.tls import TlsFiles, make_tls_files, server_context
from tests.gateway_proc import GatewayProcess
from tests.sdk_streams import read_chat_stream


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_upstream(tls_files: TlsFiles) -> Iterator[MockUpstream]:
    with MockUpstream(ssl_context=server_context(tls_files)) as mock:
        yield mock


@pytest.fixture(scope="module")
def untrusted_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockUpstream]:
    other = make_tls_files(tmp_path_factory.mktemp("untrusted"))
    with MockUpstream(ssl_context=server_context(other)) as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(
    tls_files: TlsFiles,
    tls_upstream: MockUpstream,
    untrusted_upstream: MockUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    assert tls_upstream.base_url.startswith("https://")
    proc = GatewayProcess(
        tmp_path_factory.mktemp("e2e-openai-tls"),
        {
            "providers": [
                {
                    "name": "tls",
                    "type": "openai_compatible",
                    "base_url": tls_upstream.base_url,
                    "api_key": "sk-upstream-tls-abcdefgh",
                },
                {
                    "name": "untrusted",
                    "type": "openai_compatible",
                    "base_url": untrusted_upstream.base_url,
                    "api_key": "sk-upstream-untrusted-abcdefgh",
                },
            ],
            "models": [
                {"name": "gpt-4o-mini", "provider": "tls", "model": "gpt-4o-mini"},
                {"name": "untrusted-model", "provider": "untrusted", "model": "gpt-4o-mini"},
            ],
        },
        env={"SSL_CERT_FILE": str(tls_files.ca)},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.create_key("sdk-tls"), max_retries=0)
    yield c
    c.close()


def test_non_stream_over_tls(client: openai.OpenAI, tls_upstream: MockUpstream) -> None:
    tls_upstream.reset()
    for _ in range(3):  # kept alive: one TLS connection serves them all
        r = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "say hi"}]
        )
        assert r.choices[0].message.content == "say hi"
        assert r.usage is not None and r.usage.total_tokens == 4
    seen = tls_upstream.last_request
    assert seen.headers["authorization"] == "Bearer sk-upstream-tls-abcdefgh"
    assert seen.headers["host"] == f"127.0.0.1:{tls_upstream.port}"


def test_stream_over_tls(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = read_chat_stream(stream)
    assert text == "one two three"
    assert usage is not None and usage.completion_tokens == 3
    assert finish == "stop"


def test_untrusted_certificate_is_a_clear_502(
    client: openai.OpenAI, untrusted_upstream: MockUpstream
) -> None:
    untrusted_upstream.reset()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(
            model="untrusted-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 502
    message = str(err.value)
    assert "its TLS certificate was not accepted" in message
    assert "sk-upstream" not in message
    assert not untrusted_upstream.requests  # nothing was sent over the refused connection
