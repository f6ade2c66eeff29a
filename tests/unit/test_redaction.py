"""The two nets of :mod:`llmrelay.redaction`: configured secrets and key shapes."""

from __future__ import annotations

from llmrelay.errors import UpstreamError
from llmrelay.providers.base import ProviderSpec
from llmrelay.redaction import Redactor, redact


def test_exact_secrets_of_any_shape_are_masked() -> None:
    r = Redactor(["plain-words-secret", "short", None, "plain-words-secret-longer"])
    text = r.text("a plain-words-secret-longer and a plain-words-secret, short stays")
    assert "plain-words-secret" not in text
    assert text.count("[redacted]") == 2
    assert "short stays" in text  # under MIN_SECRET_CHARS: not matched as plain text


def test_key_shapes_are_masked_without_configuration() -> None:
    shapes = [
        "sk-proj-abcdefghijkl",
        "sk-ant-api03-abcdefghij",
        "AKIAABCDEFGHIJKLMNOP",
        "Bearer abc.def.ghijkl",
        "AIzaSyA1234567890abcdefghij",
        "ya29.a0AfH6SMBxyz",
        "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----",
    ]
    for shape in shapes:
        masked = Redactor(()).text(f"key: {shape} end")
        assert shape not in masked and "[redacted]" in masked, shape
        assert redact(f"key: {shape}") != f"key: {shape}"


def test_error_fields_and_headers_are_scrubbed_in_place() -> None:
    exc = UpstreamError(
        "Incorrect API key provided: upstream-key-123456",
        status=400,
        param="upstream-key-123456",
        code="upstream-key-123456",
        headers={"retry-after": "upstream-key-123456"},
    )
    same = Redactor(["upstream-key-123456"]).error(exc)
    assert same is exc
    assert "upstream-key-123456" not in f"{exc.message}{exc.param}{exc.code}{exc.args}"
    assert exc.headers["retry-after"].isascii()  # header values must stay latin-1


def test_every_configured_provider_credential_is_collected() -> None:
    specs = [
        ProviderSpec(
            name="a",
            type="openai",
            base_url="http://a",
            api_key="key-of-a-0001",
            headers=(("x-api-token", "header-token-0002"), ("x-title", "My App!")),
        ),
        ProviderSpec(
            name="b",
            type="bedrock",
            base_url="http://b",
            api_key=None,
            aws_access_key_id="AKID-of-b-0003",
            aws_secret_access_key="secret-b-0004",
            aws_session_token="session-b-0005",
        ),
    ]
    text = Redactor.for_providers(specs).text(
        "key-of-a-0001 header-token-0002 AKID-of-b-0003 secret-b-0004 session-b-0005 My App!"
    )
    assert text.count("[redacted]") == 5
    assert text.endswith("My App!")  # a non-credential header value is left alone
