"""What a call costs: per-token prices, exact arithmetic, and the price of a target.

Money is integer **nano-dollars** (1e-9 USD) everywhere it is stored or counted:
budgets, spend counters, usage rows, summaries. Integers add up exactly on SQLite,
PostgreSQL and Redis alike, where a float total drifts (``25.000000000000004``).

Prices are :class:`~decimal.Decimal` per token with up to 15 decimal places (the
catalog's precision; the float noise of the LiteLLM JSON, like ``2.9999900000000002e-06``,
sits far below that and is rounded away). The cost of one call is computed exactly
from its integer token counts, then rounded half-up to the nano-dollar once; that
integer is what the budget is charged, the row records and the header reports.

Token semantics follow OpenAI: ``prompt_tokens`` includes the cached (read) and the
cache-write tokens, which are priced at their own rates when the catalog has them
(adapters translate Anthropic's usage, where ``input_tokens`` excludes both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from llmrelay.providers.base import Usage

NANOS_PER_USD = 10**9
#: Prices are kept to this many decimal places (Numeric(24, 15) in the ``models`` table).
PRICE_QUANTUM = Decimal("1e-15")
_ZERO = Decimal(0)

#: llmrelay provider types whose LiteLLM catalog entries carry another prefix.
LITELLM_PREFIXES: dict[str, tuple[str, ...]] = {
    "together": ("together_ai",),
    "fireworks": ("fireworks_ai",),
    "featherless": ("featherless_ai",),
    "mistral": ("mistral",),
    "vertex": ("vertex_ai",),
    "vertex_ai": ("vertex_ai",),
    "bedrock": ("bedrock", "bedrock_converse"),
    "azure": ("azure",),
    "gemini": ("gemini",),
}


def to_price(value: object) -> Decimal | None:
    """A catalog value (float from JSON or SQLite, Decimal, str, int) as an exact price."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        # repr() is the shortest text that round-trips: the number as the JSON wrote it.
        dec = Decimal(repr(value))
    elif isinstance(value, Decimal | int | str):
        dec = Decimal(value)
    else:
        return None
    if not dec.is_finite() or dec < 0:
        return None
    return dec.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP).normalize()


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token. ``None`` cache prices mean "billed as ordinary input"."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    #: Catalog ``mode`` (chat, embedding, ...) and ``litellm_provider``, informational.
    mode: str | None = None
    provider: str | None = None

    @classmethod
    def from_catalog(cls, entry: Mapping[str, object]) -> Price | None:
        """One LiteLLM catalog entry; ``None`` when it has no per-token price."""
        inp = to_price(entry.get("input_cost_per_token"))
        out = to_price(entry.get("output_cost_per_token"))
        if inp is None and out is None:
            return None
        mode = entry.get("mode")
        provider = entry.get("litellm_provider")
        return cls(
            input=inp or _ZERO,
            output=out or _ZERO,
            cache_read=to_price(entry.get("cache_read_input_token_cost")),
            cache_write=to_price(entry.get("cache_creation_input_token_cost")),
            mode=mode if isinstance(mode, str) else None,
            provider=provider if isinstance(provider, str) else None,
        )


def cost_usd(usage: Usage, price: Price) -> Decimal:
    """The exact cost of ``usage`` at ``price`` (no rounding at all)."""
    cached = max(0, usage.cached_tokens)
    written = max(0, usage.cache_write_tokens)
    plain_input = max(0, usage.prompt_tokens - cached - written)
    read_price = price.cache_read if price.cache_read is not None else price.input
    write_price = price.cache_write if price.cache_write is not None else price.input
    return (
        plain_input * price.input
        + cached * read_price
        + written * write_price
        + max(0, usage.completion_tokens) * price.output
    )


def usd_to_nanos(amount: Decimal) -> int:
    """Dollars to integer nano-dollars, rounded half-up (the one rounding step)."""
    return int((amount * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def cost_nanos(usage: Usage, price: Price) -> int:
    return usd_to_nanos(cost_usd(usage, price))


def nanos_to_usd(nanos: int) -> Decimal:
    """Exact: a nano-dollar count as a 9-decimal Decimal."""
    return Decimal(nanos).scaleb(-9).quantize(Decimal("1e-9"))


def format_usd(nanos: int) -> str:
    """The ``x-llmrelay-cost-usd`` form: fixed 9 decimals, e.g. ``0.000004500``."""
    if nanos >= 0:  # every answer's header: integer arithmetic, no Decimal context work
        return f"{nanos // NANOS_PER_USD}.{nanos % NANOS_PER_USD:09d}"
    return f"{nanos_to_usd(nanos):.9f}"


class PriceBook:
    """Prices by model name: config overrides first, then the catalog.

    A call's price is found by the id sent upstream, trying the names the LiteLLM
    catalog uses for it: ``<provider>/<model>``, ``<litellm prefix>/<model>``, the bare
    ``<model>``, and for ids that carry their own vendor prefix (OpenRouter's
    ``openai/gpt-4o``) the id without it.
    """

    def __init__(
        self, catalog: Mapping[str, Price], overrides: Mapping[str, Price] | None = None
    ) -> None:
        self._catalog = catalog
        self._overrides = dict(overrides or {})
        self._memo: dict[tuple[str, str, str], Price | None] = {}

    def get(self, name: str) -> Price | None:
        return self._overrides.get(name) or self._catalog.get(name)

    @staticmethod
    def candidates(provider: str, provider_type: str, model: str) -> list[str]:
        names = [f"{provider}/{model}"]
        if provider_type != provider:
            names.append(f"{provider_type}/{model}")
        names.extend(f"{p}/{model}" for p in LITELLM_PREFIXES.get(provider_type, ()))
        names.append(model)
        _vendor, sep, tail = model.partition("/")
        if sep and tail:
            names.append(tail)
        return list(dict.fromkeys(names))

    def lookup(self, provider: str, provider_type: str, model: str) -> Price | None:
        memo_key = (provider, provider_type, model)
        if memo_key in self._memo:
            return self._memo[memo_key]
        names = self.candidates(provider, provider_type, model)
        price = next((p for n in names if (p := self._overrides.get(n)) is not None), None)
        if price is None:
            price = next((p for n in names if (p := self._catalog.get(n)) is not None), None)
        if len(self._memo) < 10_000:
            self._memo[memo_key] = price
        return price
