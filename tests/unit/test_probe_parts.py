"""The probe's pure parts: options, classification, model choice, request bodies, the
table (against docs/probe.md's example), percentiles."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from llmrelay.config import ProbeSettings
from llmrelay.probe.classify import classify_status, label
from llmrelay.probe.config import ProbeConfigError, build_options
from llmrelay.probe.history import percentile
from llmrelay.probe.render import render_text, summary_line
from llmrelay.probe.report import ModelResult, ProviderReport, Report
from llmrelay.probe.targets import Target, kind
from llmrelay.probe.tiers import TierResult, chat_body, is_reasoning
from llmrelay.probe.wire import Answer, Client, short

DOC = Path(__file__).parents[2] / "docs" / "probe.md"


def test_flags_override_settings_and_env_gives_url_and_key() -> None:
    env = {"GATEWAYZ_API_URL": "http://gw:8000/", "GATEWAYZ_API_KEY": "sk-seed"}
    o = build_options(ProbeSettings(max_models_per_gateway=5), {"timeout": 3.0}, env)
    assert (o.max_models_per_gateway, o.timeout_seconds) == (5, 3.0)
    assert (o.url, o.key) == ("http://gw:8000", "sk-seed")
    mine = {"LLMRELAY_URL": "http://mine", "LLMRELAY_API_KEY": "sk-mine", **env}
    o = build_options(ProbeSettings(), {}, mine)
    assert (o.url, o.key) == ("http://mine", "sk-mine")
    assert "key" not in o.public() and "sk-mine" not in repr(o)


@pytest.mark.parametrize(
    ("flags", "env", "words"),
    [
        ({"models_count": 0}, {}, "--models"),
        ({"timeout": 0.0}, {}, "--timeout"),
        ({"concurrency": 0}, {}, "--concurrency"),
        ({"url": "gw:8000", "key": "k"}, {}, "http://"),
        ({"url": "http://gw"}, {}, "needs a key"),
    ],
)
def test_bad_options_are_refused_by_name(
    flags: dict[str, object], env: dict[str, str], words: str
) -> None:
    with pytest.raises(ProbeConfigError, match=re.escape(words)):
        build_options(ProbeSettings(), flags, env)


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, None, "auth"),
        (502, "upstream_authentication_failed", "auth"),
        (404, "model_not_found", "not_found"),
        (400, "model_not_found", "not_found"),
        (400, "invalid_request_error", "bad_request"),
        (429, None, "rate_limited"),
        (500, None, "server_error"),
        (502, "upstream_unreachable", "server_error"),
        (503, None, "unavailable"),
        (504, "upstream_timeout", "timeout"),
    ],
)
def test_classification_follows_the_seed_table(status: int, code: str | None, reason: str) -> None:
    assert classify_status(status, code) == reason


def test_labels_are_the_seed_words() -> None:
    assert label("auth") == "401 bad key" and label("rate_limited") == "429 rate limited"


def test_only_chat_models_are_asked_chat() -> None:
    assert kind("text-embedding-3-small") == "embedding"
    assert kind("dall-e-3") == "other" and kind("whisper-1") == "other"
    assert kind("llama3.2") == "chat" and kind("gpt-4o-mini") == "chat"


def test_reasoning_models_get_room_to_think() -> None:
    options = build_options(ProbeSettings(max_tokens=50), {}, {})
    assert is_reasoning("openai/o3-mini") and is_reasoning("deepseek-r1")
    assert not is_reasoning("gpt-4o-mini") and not is_reasoning("llama3.2")
    body = chat_body(options, "openai/o3-mini")
    assert body["max_completion_tokens"] >= 512 and body["reasoning_effort"] == "low"
    assert "temperature" not in body and "max_tokens" not in body
    assert chat_body(options, "gpt-5-mini")["reasoning_effort"] == "minimal"
    plain = chat_body(options, "gpt-4o-mini", stream=True)
    assert plain["max_tokens"] == 50 and plain["stream_options"] == {"include_usage": True}


def test_error_text_never_carries_a_key() -> None:
    text = short("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwxyz0123", None)
    assert "abcdefghijklmnop" not in text
    assert "my-probe-key" not in short("refused my-probe-key", "my-probe-key")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def _ok(
    model: str, chat_ms: float, stream_ms: float, ttft: float, tokens: int, cost: int
) -> ModelResult:
    return ModelResult(
        Target(model.split("/")[0], model),
        [
            TierResult("listed", True),
            TierResult("chat", True, status=200, ms=chat_ms, tokens=tokens, cost_nanos=cost),
            TierResult("stream", True, status=200, ms=stream_ms, ttft_ms=ttft, tokens=tokens),
        ],
    )


def example_report() -> Report:
    """The run docs/probe.md shows."""
    missing = ModelResult(
        Target("openai", "openai/o3-mini"),
        [
            TierResult("listed", True),
            TierResult(
                "chat",
                False,
                "not_found",
                404,
                "The model `o3-mini` does not exist or you do not have access to it.",
                ms=120,
            ),
        ],
    )
    stalled = ModelResult(
        Target("ollama", "ollama/qwen2.5"),
        [
            TierResult("listed", True),
            TierResult("chat", True, status=200, ms=2100, tokens=12),
            TierResult("stream", False, "timeout", None, "no answer within 30s", ms=30000),
        ],
    )
    refused = ModelResult(
        Target("groq", "groq/llama-3.1-8b-instant"),
        [
            TierResult("listed", True),
            TierResult(
                "chat",
                False,
                "auth",
                502,
                "upstream groq rejected the credentials llmrelay holds for it",
                ms=90,
            ),
        ],
    )
    report = Report("run", "http://127.0.0.1:8080", datetime(2026, 12, 3, tzinfo=UTC))
    report.providers = [
        ProviderReport(
            "openai",
            12,
            [
                _ok("openai/gpt-4o-mini", 510, 310, 240, 23, 4650),
                _ok("openai/gpt-4o", 700, 500, 380, 23, 77500),
                missing,
            ],
        ),
        ProviderReport("ollama", 2, [_ok("ollama/llama3.2", 1400, 1050, 610, 31, 0), stalled]),
        ProviderReport("groq", 9, [refused]),
    ]
    return report


def _doc_block(marker: str) -> str:
    text = DOC.read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```text\n", 1)[1].split("```", 1)[0]


def test_docs_example_output_is_what_the_probe_prints() -> None:
    assert render_text(example_report()) == _doc_block("example: probe output")


def test_summary_lines_have_the_seed_layout() -> None:
    report = example_report()
    assert [summary_line(p) for p in report.providers] == [
        "[WARN] openai        :  2/ 3 passed ( 66.7%)",
        "[WARN] ollama        :  1/ 2 passed ( 50.0%)",
        "[FAIL] groq          :  0/ 1 passed (  0.0%)",
    ]
    assert report.exit_code == 1
    all_ok = ProviderReport("openrouter", 3, [_ok("openrouter/a", 1, 1, 1, 1, 0)] * 3)
    # The seed's own first line, character for character.
    assert summary_line(all_ok) == "[OK] openrouter      :  3/ 3 passed (100.0%)"


async def test_a_429_is_waited_once_within_the_budget_and_cools_the_provider() -> None:
    sent: list[float] = []

    def answers(*statuses: int) -> Callable[[float], Awaitable[Answer]]:
        queue = list(statuses)

        async def attempt(budget: float) -> Answer:
            sent.append(budget)
            return Answer(queue.pop(0), {"retry-after": "0.05"})

        return attempt

    async with aiohttp.ClientSession() as session:
        client = Client(session, "http://127.0.0.1:9", "k").for_provider()
        second_try = await client._with_retry_after(answers(429, 200), 5.0)
        assert second_try.status == 200 and second_try.waited_s == 0.05
        assert len(sent) == 2 and sent[1] < 5.0  # the retry gets what is left of the budget
        sent.clear()
        still_limited = await client._with_retry_after(answers(429, 429), 5.0)
        assert still_limited.status == 429 and len(sent) == 2  # one wait, then classified
        sent.clear()
        too_long = await client._with_retry_after(answers(429), 0.01)
        assert too_long.status == 429 and len(sent) == 1  # the wait does not fit: no retry
        assert client.cooldown.remaining() > 0  # the provider's next calls wait it out
        other = client.for_provider()
        assert other.cooldown.remaining() == 0  # another provider is not held back
