from __future__ import annotations

from pathlib import Path

import pytest

from llmrelay.config import ConfigError, interpolate, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_without_any_config() -> None:
    s = load_settings(env={})
    assert s.port == 8080 and s.host == "0.0.0.0"
    assert s.database_url.startswith("sqlite+aiosqlite")
    assert s.mock_provider is True


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\nlog_level: debug\n")
    s = load_settings(path, env={"LLMRELAY_PORT": "9100"})
    assert s.port == 9100 and s.log_level == "debug"
    s = load_settings(path, env={"LLMRELAY_PORT": "9100"}, overrides={"port": 9200})
    assert s.port == 9200


def test_config_file_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9300\n")
    assert load_settings(env={"LLMRELAY_CONFIG": str(path)}).port == 9300


def test_interpolation() -> None:
    env = {"A": "1", "KEY": "sk-x"}
    tree = {"x": "${A}", "y": ["${MISSING:-dflt}", "pre-${KEY}"], "z": 3, "w": "${NONE}"}
    assert interpolate(tree, env) == {"x": "1", "y": ["dflt", "pre-sk-x"], "z": 3, "w": ""}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bogus: 1\n", "bogus"),
        ("port: nope\n", "port"),
        ("providers:\n  - name: a\n    type: openai\n    extra: 1\n", "providers[0]"),
        ("providers:\n  - name: a\n    type: what\n", "providers[0].type"),
        (
            "providers:\n  - {name: a, type: openai}\n  - {name: a, type: groq}\n",
            "providers[1].name",
        ),
        ("models:\n  - {name: m, provider: nobody, model: x}\n", "models[0].provider"),
        ("providers:\n  - {name: c, type: openai_compatible}\n", "providers[0].base_url"),
        ("- 1\n- 2\n", "mapping"),
        ("port: [\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert needle in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml", env={})
