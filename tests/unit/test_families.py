"""Provider families: one typed object per family, mapped from every provider type."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from llmrelay.config import Settings, load_settings
from llmrelay.errors import UpstreamError
from llmrelay.mock_answers.bedrock_format import event_frame
from llmrelay.providers import family as fam
from llmrelay.providers.base import Capabilities, ProviderSpec
from llmrelay.providers.bedrock import BedrockAdapter
from llmrelay.providers.config_types import CONFIG_TYPES, parse_provider
from llmrelay.providers.google_auth import BearerTransport
from llmrelay.providers.presets import PRESETS
from llmrelay.providers.registry import build_registry

SRC = Path(__file__).resolve().parents[2] / "src" / "llmrelay"


class Sentinel:
    """A transport stand-in: these tests only check which transport a family picks."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_every_type_has_exactly_one_family() -> None:
    assert set(fam.BY_TYPE) == set(CONFIG_TYPES)
    served = [t for f in fam.FAMILIES for t in f.configs]
    assert len(served) == len(set(served))
    for kind, family in fam.BY_TYPE.items():
        assert family.configs[kind] is CONFIG_TYPES[kind]
    assert {t for t in PRESETS if t not in ("openai", "anthropic")} <= set(
        fam.OPENAI_COMPATIBLE.configs
    )


def test_capabilities_are_declared_per_family() -> None:
    assert fam.family_for("openai").caps.responses_passthrough
    assert fam.family_for("groq").caps == Capabilities()
    anthropic = fam.family_for("anthropic").caps
    assert anthropic.messages_passthrough and anthropic.count_tokens and not anthropic.embeddings
    assert fam.family_for("bedrock").caps.stream_framing == "aws-eventstream"
    assert not fam.family_for("azure").caps.models and not fam.family_for("mock").caps.models
    assert not fam.family_for("gemini").caps.responses_passthrough


def _service_account(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "from-file",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "r@p.iam.gserviceaccount.com",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    return path


def test_registry_builds_each_provider_from_its_family(tmp_path: Path) -> None:
    sa = _service_account(tmp_path / "sa.json")
    path = tmp_path / "c.yaml"
    path.write_text(
        json.dumps(
            {
                "providers": [
                    {"name": "oa", "type": "openai", "api_key": "sk"},
                    {"name": "an", "type": "anthropic", "api_key": "k"},
                    {"name": "v", "type": "vertex", "credentials_file": str(sa)},
                    {
                        "name": "b",
                        "type": "bedrock",
                        "region": "us-east-1",
                        "aws_access_key_id": "A",
                        "aws_secret_access_key": "S",
                    },
                    {"name": "off", "type": "groq", "enabled": False},
                ],
                "auto_providers": False,
            }
        )
    )
    http, mock = Sentinel("http"), Sentinel("mock")
    registry = build_registry(load_settings(path, env={}), {}, http, mock)  # type: ignore[arg-type]
    assert {p.name for p in registry} == {"oa", "an", "v", "b", "mock"}
    oa, an, v, b, m = (registry.get(n) for n in ("oa", "an", "v", "b", "mock"))
    assert oa is not None and an is not None and v is not None and b is not None
    assert m is not None
    assert oa.family is fam.OPENAI and oa.caps.responses_passthrough and oa.transport is http
    assert an.family is fam.ANTHROPIC and an.spec.auth_header == "x-api-key"
    assert isinstance(v.transport, BearerTransport) and v.spec.project == "from-file"
    assert isinstance(b.adapter, BedrockAdapter) and b.caps.stream_framing == "aws-eventstream"
    assert m.family is fam.MOCK and m.transport is mock and m.models() == ("echo",)


def test_a_configured_mock_uses_the_in_process_transport() -> None:
    settings = Settings(
        providers=[parse_provider({"name": "mock", "type": "mock", "models": ["m1"]})],
        mock_provider=False,
        auto_providers=False,
    )
    http, mock = Sentinel("http"), Sentinel("mock")
    provider = build_registry(settings, {}, http, mock).get("mock")  # type: ignore[arg-type]
    assert provider is not None and provider.transport is mock
    assert provider.models() == ("m1",) and not provider.spec.lists_models


def test_presets_switch_on_from_their_key_variable() -> None:
    settings = Settings()
    registry = build_registry(
        settings,
        {"GROQ_API_KEY": "gk", "OLLAMA_BASE_URL": "http://o/v1"},
        Sentinel("http"),
        Sentinel("mock"),
    )  # type: ignore[arg-type]
    groq, ollama = registry.get("groq"), registry.get("ollama")
    assert groq is not None and groq.spec.api_key == "gk" and groq.family is fam.OPENAI_COMPATIBLE
    assert ollama is not None and ollama.spec.base_url == "http://o/v1"
    assert registry.get("openai") is None


@pytest.mark.parametrize(("limit", "ok"), [(64 * 1024, True), (1024, False)])
def test_bedrock_splitter_honours_max_event_bytes(limit: int, ok: bool) -> None:
    frame = event_frame("contentBlockDelta", {"delta": {"text": "x" * 4000}})
    spec = ProviderSpec(name="b", type="bedrock", base_url="https://b", api_key=None)
    splitter = BedrockAdapter().splitter(spec, limit)
    if ok:
        assert splitter.feed(frame) == [frame]
    else:
        with pytest.raises(UpstreamError, match="malformed event stream"):
            splitter.feed(frame)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (inside functions and TYPE_CHECKING too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(names: set[str], allowed: tuple[str, ...]) -> set[str]:
    """The llmrelay imports among ``names`` outside the ``allowed`` modules."""
    return {
        n
        for n in names
        if n.startswith("llmrelay") and not any(n == a or n.startswith(a + ".") for a in allowed)
    }


def test_config_and_providers_do_not_import_each_other() -> None:
    for path in sorted((SRC / "providers").glob("*.py")):
        config = {
            n for n in _imports(path) if n == "llmrelay.config" or n.startswith("llmrelay.config.")
        }
        assert not config, path.name
    from_providers = {n for n in _imports(SRC / "config.py") if n.startswith("llmrelay.providers")}
    assert from_providers and not _within(from_providers, ("llmrelay.providers.config_types",))


def test_the_config_types_module_is_a_leaf() -> None:
    inside = _imports(SRC / "providers" / "config_types.py")
    assert not _within(inside, ("llmrelay.config_error", "llmrelay.providers.presets"))
