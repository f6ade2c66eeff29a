"""Exact cost arithmetic, the price catalog, token estimates and governance settings."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from llmrelay.config import ConfigError, load_settings
from llmrelay.governance import estimate
from llmrelay.governance.catalog import CatalogError, load_snapshot, parse_catalog
from llmrelay.governance.pricing import (
    Price,
    PriceBook,
    cost_nanos,
    cost_usd,
    format_usd,
    nanos_to_usd,
    to_price,
)
from llmrelay.providers.base import Usage


def usage(prompt: int, completion: int, cached: int = 0, written: int = 0) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def test_cost_is_exact_with_many_decimal_places() -> None:
    # A real catalog price with 15 decimals: 1.41953125e-07 USD per token.
    price = Price(input=Decimal("0.000000141953125"), output=Decimal("0.000000567812500"))
    exact = cost_usd(usage(3, 7), price)
    assert exact == Decimal("0.000004400546875")  # 3 * .141953125e-6 + 7 * .5678125e-6
    assert cost_nanos(usage(3, 7), price) == 4401  # rounded half-up once, to 1e-9 USD
    assert format_usd(4401) == "0.000004401"


def test_cached_and_cache_write_tokens_have_their_own_prices() -> None:
    price = Price(
        input=Decimal("0.000003"),
        output=Decimal("0.000015"),
        cache_read=Decimal("0.0000003"),
        cache_write=Decimal("0.00000375"),
    )
    # 1000 prompt tokens of which 600 read from cache and 300 written to it.
    got = cost_usd(usage(1000, 10, cached=600, written=300), price)
    assert got == (
        100 * Decimal("0.000003")
        + 600 * Decimal("0.0000003")
        + 300 * Decimal("0.00000375")
        + 10 * Decimal("0.000015")
    )
    assert got == Decimal("0.001755")


def test_without_cache_prices_cached_tokens_bill_as_input() -> None:
    price = Price(input=Decimal("0.000002"), output=Decimal("0"))
    assert cost_usd(usage(100, 0, cached=40), price) == Decimal("0.0002")


def test_nano_dollars_add_up_where_floats_drift() -> None:
    price = Price(input=Decimal("0.0000001"), output=Decimal("0.0000002"))
    one = cost_nanos(usage(1, 1), price)  # $0.0000003
    total = sum(one for _ in range(100_000))
    assert nanos_to_usd(total) == Decimal("0.030000000")
    drifting = 0.0
    for _ in range(100_000):
        drifting += 0.0000003
    assert drifting != 0.03  # 0.030000000000078516: the float total drifts, integers do not


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (2.9999900000000002e-06, Decimal("0.00000299999")),  # float noise from the JSON
        (1.41953125e-07, Decimal("0.000000141953125")),
        (3e-05, Decimal("0.00003")),
        ("0.0000025", Decimal("0.0000025")),
        (0, Decimal(0)),
        (None, None),
        (-1.0, None),
        (True, None),
    ],
)
def test_catalog_values_become_exact_prices(raw: object, expected: Decimal | None) -> None:
    assert to_price(raw) == expected


def test_price_lookup_tries_catalog_name_variants_and_overrides_win() -> None:
    catalog = {
        "gpt-4o-mini": Price(Decimal("1"), Decimal("2")),
        "together_ai/meta-llama/Llama-3-8b": Price(Decimal("3"), Decimal("3")),
        "groq/openai/gpt-oss-20b": Price(Decimal("4"), Decimal("4")),
        "gpt-4o": Price(Decimal("5"), Decimal("5")),
    }
    book = PriceBook(catalog, {"up/gpt-4o-mini": Price(Decimal("9"), Decimal("9"))})
    assert book.lookup("up", "openai_compatible", "gpt-4o-mini") == Price(
        Decimal("9"), Decimal("9")
    )
    assert book.lookup("other", "openai", "gpt-4o-mini") == catalog["gpt-4o-mini"]
    assert (
        book.lookup("tg", "together", "meta-llama/Llama-3-8b")
        == catalog["together_ai/meta-llama/Llama-3-8b"]
    )
    assert book.lookup("groq", "groq", "openai/gpt-oss-20b") == catalog["groq/openai/gpt-oss-20b"]
    assert book.lookup("openrouter", "openrouter", "openai/gpt-4o") == catalog["gpt-4o"]
    assert book.lookup("mock", "mock", "echo") is None


def test_bundled_snapshot_has_real_prices() -> None:
    snapshot = load_snapshot()
    mini = snapshot["gpt-4o-mini"]
    assert mini.input == Decimal("0.00000015") and mini.output == Decimal("0.0000006")
    assert mini.cache_read == Decimal("0.000000075")
    assert snapshot["text-embedding-3-small"].mode == "embedding"
    assert "sample_spec" not in snapshot


def test_parse_catalog_rejects_other_formats() -> None:
    with pytest.raises(CatalogError, match="not valid JSON"):
        parse_catalog(b"{nope")
    with pytest.raises(CatalogError, match="LiteLLM format"):
        parse_catalog(orjson.dumps({"gpt-x": {"price": 1}}))
    parsed = parse_catalog(
        orjson.dumps({"m": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"}})
    )
    assert parsed["m"].output == 0 and parsed["m"].provider == "openai"


def test_prompt_estimate_counts_text_not_parameters() -> None:
    body = {
        "model": "a-very-long-model-name-that-is-not-prompt",
        "temperature": 0.5,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "x" * 36}],
    }
    assert estimate.prompt_tokens(body) == 10  # ("user" + 36 chars) / 4
    image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + "A" * 9999},
                    }
                ],
            }
        ]
    }
    assert (
        estimate.prompt_tokens(image)
        == estimate.tokens_for_chars(len("user") + len("image_url")) + estimate.IMAGE_TOKENS
    )
    assert estimate.completion_allowance({"max_completion_tokens": 7, "max_tokens": 9}, 99) == 7
    assert estimate.completion_allowance({"max_output_tokens": 5}, 99) == 5
    assert estimate.completion_allowance({}, 99) == 99


def test_seed_quota_switches_map_to_settings() -> None:
    s = load_settings(env={"QUOTA_ENABLED": "true", "QUOTA_LIMIT": "200"})
    assert s.limits_enabled and s.default_rph == 200
    assert load_settings(env={"QUOTA_ENABLED": "true"}).default_rph == 100  # seed 002 default
    assert not load_settings(env={"QUOTA_ENABLED": "false"}).limits_enabled
    s = load_settings(env={"QUOTA_LIMIT": "200", "LLMRELAY_DEFAULT_RPH": "7"})
    assert s.default_rph == 7
    assert load_settings(env={}).default_rph is None


def test_several_workers_without_redis_are_refused() -> None:
    with pytest.raises(ConfigError, match="need redis_url"):
        load_settings(env={"LLMRELAY_WORKERS": "2"})
    s = load_settings(
        env={"LLMRELAY_WORKERS": "2", "LLMRELAY_REDIS_URL": "redis://127.0.0.1:6379/0"}
    )
    assert s.workers == 2


def test_governance_settings_are_validated(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="redis_fail_mode"):
        load_settings(env={"LLMRELAY_REDIS_FAIL_MODE": "maybe"})
    with pytest.raises(ConfigError, match=r"prices\.m"):
        load_settings(overrides={"prices": {"m": {"cache_read_input_token_cost": 1e-7}}})
    s = load_settings(
        overrides={
            "prices": {"m": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": "0.0000006"}}
        }
    )
    assert s.prices["m"].input_cost_per_token == Decimal("1.5E-7")
