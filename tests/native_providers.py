"""Config for the native providers (Gemini, Vertex, Bedrock, Azure, Ollama) in front of the
mock upstream: shared by the conformance suite and the end-to-end tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from llmrelay.mock_answers.bedrock_format import MOCK_ACCESS_KEY_ID, MOCK_SECRET_ACCESS_KEY
from llmrelay.mock_upstream import MockUpstream

#: provider name -> a chat model on it
CHAT_MODELS = {
    "gemini": "gemini/gemini-2.0-flash",
    "vertex": "vertex/gemini-2.0-flash",
    "bedrock": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
    "azure": "azure/gpt-4o-prod",
    "ollama": "ollama/llama3:8b",
}
_KEY_IDS = iter(range(1_000_000))


@functools.cache
def _service_key(root_url: str) -> tuple[str, str]:
    """An RSA key (generated once per mock: it is slow) registered with the mock."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"mock-key-{next(_KEY_IDS)}-{id(key):x}"
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    httpx.post(root_url + "/_mock/google/keys", json={kid: public}).raise_for_status()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return kid, private


def service_account_file(mock: MockUpstream, directory: Path) -> Path:
    """A service-account file whose public key the mock's token endpoint trusts."""
    kid, private = _service_key(mock.root_url)
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "mock-project",
                "private_key_id": kid,
                "private_key": private,
                "client_email": "relay@mock-project.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": mock.root_url + "/token",
            }
        )
    )
    return path


def native_providers(mock: MockUpstream, directory: Path) -> list[dict[str, Any]]:
    root = mock.root_url
    return [
        {
            "name": "gemini",
            "type": "gemini",
            "base_url": root + "/v1beta",
            "api_key": "gm-test-key",
        },
        {
            "name": "vertex",
            "type": "vertex",
            "base_url": root + "/v1",
            "credentials_file": str(service_account_file(mock, directory)),
            "location": "us-central1",
        },
        {
            "name": "bedrock",
            "type": "bedrock",
            "base_url": root,
            "region": "us-east-1",
            "aws_access_key_id": MOCK_ACCESS_KEY_ID,
            "aws_secret_access_key": MOCK_SECRET_ACCESS_KEY,
        },
        {
            "name": "azure",
            "type": "azure",
            "base_url": root,
            "api_key": "az-test-key",
            "models": ["gpt-4o-prod", "embed-prod"],
        },
        {"name": "ollama", "type": "ollama", "base_url": mock.base_url},
    ]
