"""Person names by NER (``names: ner``, the optional ``ner`` extra) through the HTTP
surface with the official SDKs: the real spaCy model, redacted and restored in JSON and
streams; the heuristic alone without it; the refusals when the extra is missing or a
text is too long; the model run on its own thread, loaded once at start.

The gateway's settings ask for NER in their own ``plugins`` block (an output ``flag``
of names), so the model is loaded at start; each test sends its own route config.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmrelay.errors import InvalidRequest
from llmrelay.guardrails import ner
from llmrelay.guardrails.config import GuardrailConfigError, parse_guardrails
from llmrelay.guardrails.entities import detect
from llmrelay.guardrails.ner import NameModel
from llmrelay.plugins.registry import plugin_selector
from tests.integration.test_guardrails_pipeline import Env, _chat_stream, started_env

TEXT = "Marie Curie met John Smith in Paris."
SETTINGS_BLOCK = {
    "output": [{"type": "pii_detection", "action": "flag", "entities": ["NAME"], "names": "ner"}]
}


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    directory: Path = tmp_path_factory.mktemp("guardrails_ner")
    async with started_env(directory, "ner", plugins={"guardrails": SETTINGS_BLOCK}) as env:
        yield env


@pytest.fixture(autouse=True)
def _whole_chunks(env: Env) -> None:
    env.upstream.split = False


def _ner(stage: str, action: str, **extra: Any) -> dict[str, Any]:
    guard = {"type": "pii_detection", "action": action, "names": "ner", **extra}
    return {"guardrails": {stage: [guard]}}


RESTORE = _ner("input", "redact", restore=True)


def test_the_model_was_loaded_once_at_start(env: Env) -> None:
    model = env.gateway.services.ner
    assert model.load_seconds is not None  # the settings' guardrails asked for it
    loaded = model._nlp
    model.load()
    assert model._nlp is loaded


async def test_english_names_are_redacted_and_restored(env: Env) -> None:
    raw = await env.openai(RESTORE).chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": TEXT}]
    )
    assert raw.parse().choices[0].message.content == TEXT  # the client reads the originals
    sent = env.sent()
    assert b"[NAME_1] met [NAME_2] in Paris." in sent
    assert b"Marie" not in sent and b"Smith" not in sent
    assert raw.headers["x-llmrelay-guardrails"] == "input.redact.NAME=2"
    message = await env.anthropic(RESTORE).messages.create(
        model="mock/echo", max_tokens=50, messages=[{"role": "user", "content": TEXT}]
    )
    assert message.content[0].text == TEXT  # type: ignore[union-attr]
    assert b"Curie" not in env.sent()


async def test_marie_curie_is_found_beside_the_other_detectors(env: Env) -> None:
    text = "Nhân viên Nguyễn Văn A wrote to Marie Curie at marie@example.com"
    chat = await env.openai(_ner("input", "redact")).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    )
    assert chat.choices[0].message.content == "Nhân viên [NAME_1] wrote to [NAME_2] at [EMAIL_1]"


@pytest.mark.parametrize("split", [False, True], ids=["word-chunks", "char-chunks"])
async def test_streams_restore_and_redact_names(env: Env, split: bool) -> None:
    env.upstream.split = split
    messages = [{"role": "user", "content": TEXT}]
    assert await _chat_stream(env.openai(RESTORE), messages=messages) == TEXT
    assert b"Marie" not in env.sent()
    async with env.anthropic(RESTORE).messages.stream(
        model="mock/echo", max_tokens=50, messages=messages
    ) as stream:  # type: ignore[arg-type]
        assert "".join([t async for t in stream.text_stream]) == TEXT
    # Output: the model's own names, checked in the stream per segment, never split.
    long = " ".join(["The committee thanked everyone for coming."] * 12) + " " + TEXT
    got = await _chat_stream(
        env.openai(_ner("output", "redact")), messages=[{"role": "user", "content": long}]
    )
    assert got.endswith("[NAME_1] met [NAME_2] in Paris.") and "Marie" not in got
    stream = await env.openai(RESTORE).responses.create(model="mock/echo", stream=True, input=TEXT)
    deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas) == TEXT


async def test_without_ner_the_heuristic_alone_finds_names(env: Env) -> None:
    config = {"guardrails": {"input": [{"type": "pii_detection", "action": "redact"}]}}
    text = "Ông Trần Hưng Đạo met Marie Curie"
    chat = await env.openai(config).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    )
    assert chat.choices[0].message.content == "Ông [NAME_1] met Marie Curie"


async def test_the_model_runs_on_its_own_thread(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    names = NameModel.names

    def spy(self: NameModel, text: str, max_chars: int) -> list[tuple[int, int]]:
        threads.append(threading.current_thread().name)
        return names(self, text, max_chars)

    monkeypatch.setattr(NameModel, "names", spy)
    await env.openai(_ner("input", "redact")).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": TEXT}]
    )
    await _chat_stream(
        env.openai(_ner("output", "flag")), messages=[{"role": "user", "content": TEXT}]
    )
    assert threads and all(t.startswith("llmrelay-ner") for t in threads)


async def test_a_text_over_ner_max_chars_fails_closed(env: Env) -> None:
    long = [{"role": "user", "content": TEXT + " x" * 100}]
    with pytest.raises(openai.InternalServerError) as failed:
        await env.openai(_ner("input", "redact", ner_max_chars=50)).chat.completions.create(
            model="mock/echo", messages=long
        )
    assert "over ner_max_chars (50)" in str(failed.value)
    allow = _ner("input", "redact", ner_max_chars=50, on_error="allow")
    chat = await env.openai(allow).chat.completions.create(model="mock/echo", messages=long)
    assert chat.choices[0].message.content == long[0]["content"]


def _without_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else find(name, *a)
    )


async def test_ner_without_the_extra_is_a_config_error(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_spacy(monkeypatch)
    assert ner.missing() is not None and "llmrelay[ner]" in str(ner.missing())
    fresh = _ner("input", "redact", name="never_parsed")  # a parsed block is reused
    with pytest.raises(openai.BadRequestError) as refused:
        await env.openai(fresh).chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": TEXT}]
        )
    assert "guardrails.input[0].names" in str(refused.value)
    assert "pip install 'llmrelay[ner]'" in str(refused.value)
    # In the settings: what the start builds the plug-ins with refuses them.
    with pytest.raises(InvalidRequest, match=r"llmrelay\[ner\]"):
        plugin_selector({"guardrails": SETTINGS_BLOCK}, env.gateway.services.governor)


def test_names_options_are_checked() -> None:
    for bad, path in [
        ({"names": "bert"}, "names"),
        ({"names": "ner", "entities": ["EMAIL"]}, "names"),
        ({"names": "ner", "ner_max_chars": 0}, "ner_max_chars"),
        ({"ner_max_chars": True}, "ner_max_chars"),
    ]:
        with pytest.raises(GuardrailConfigError) as refused:
            parse_guardrails({"input": [{"type": "pii_detection", **bad}]})
        assert refused.value.path == f"guardrails.input[0].{path}"
    heuristic = parse_guardrails({"input": [{"type": "pii_detection", "names": "heuristic"}]})
    assert not heuristic.uses_ner


def test_detect_merges_the_model_with_the_heuristic(env: Env) -> None:
    guard = parse_guardrails({"input": [{"type": "pii_detection", "names": "ner"}]}).input[0]
    text = "Bà Lê Thị Hương and Barack Obama; call +1 415 555 0100"
    found = [
        (f.entity, text[f.start : f.end]) for f in detect(text, guard, env.gateway.services.ner)
    ]
    assert ("NAME", "Lê Thị Hương") in found and ("NAME", "Barack Obama") in found
    assert any(e == "PHONE" for e, _ in found)
    assert detect("no capitals here at all", guard, env.gateway.services.ner) == []
    with pytest.raises(RuntimeError, match="no NER model"):
        detect(text, guard, None)


def test_the_models_known_mistakes_are_dropped(env: Env) -> None:
    """What the Faker corpus showed the English model calls a person: an upper-case
    word (CMND, EAN) and the Vietnamese title "Nhân viên"."""
    guard = parse_guardrails({"input": [{"type": "pii_detection", "names": "ner"}]}).input[0]
    model = env.gateway.services.ner
    for text in [
        "Adrienne Chevalier today CMND 741712345",
        "Lewis today EAN 6998123456789",
        "signed by Holden today Nhân viên Trần Thị Lan, phòng kế toán",
    ]:
        names = [text[f.start : f.end] for f in detect(text, guard, model) if f.entity == "NAME"]
        assert not {"CMND", "EAN", "Nhân", "Nhân viên"} & set(names), names


def test_spacy_is_imported_only_when_a_guardrail_uses_it() -> None:
    """``import spacy`` costs seconds: starting the gateway, or parsing a names: ner
    block (which looks for the packages), imports none of it."""
    probe = (
        "import json, sys\nimport llmrelay.app, llmrelay.cli\n"
        "from llmrelay.guardrails.config import parse_guardrails\n"
        "parse_guardrails({'input': [{'type': 'pii_detection', 'names': 'ner'}]})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert not [m for m in json.loads(out) if m.split(".")[0] in ("spacy", "thinc", ner.MODEL)]
