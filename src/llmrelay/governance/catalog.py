"""The price catalog: the bundled LiteLLM snapshot, the ``models`` table, and syncing them.

The catalog is LiteLLM/BerriAI's ``model_prices_and_context_window.json`` format. A
snapshot ships with the package (gzip; entries are converted only when looked up);
``llmrelay catalog sync`` writes it, a file or a URL into the ``models`` table. A
running gateway looks a price up in that table first, then in the snapshot.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from llmrelay.governance.pricing import Price
from llmrelay.governance.usage import dialect_insert
from llmrelay.store.database import Database, Writer
from llmrelay.store.ids import new_id, utcnow
from llmrelay.store.tables import models

SNAPSHOT = Path(__file__).parent / "data" / "model_prices_and_context_window.json.gz"


class CatalogError(Exception):
    """The catalog could not be read or is not in the LiteLLM format."""


def parse_catalog(raw: bytes) -> dict[str, Price]:
    """Every entry with a per-token price, by model name (``sample_spec`` skipped)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"the catalog is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError("the catalog must be a JSON object of model name -> entry")
    out: dict[str, Price] = {}
    for name, entry in data.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        price = Price.from_catalog(entry)
        if price is not None:
            out[name] = price
    if data and not out:
        raise CatalogError(
            "the catalog has no entry with input_cost_per_token or "
            "output_cost_per_token; is it the LiteLLM format?"
        )
    return out


class LazyCatalog(Mapping[str, Price]):
    """A parsed catalog whose entries become :class:`Price` only when looked up.

    Converting all ~4,000 entries to exact decimals costs more than reading the file;
    a gateway looks up a handful.
    """

    def __init__(self, entries: dict[str, Any]) -> None:
        self._entries = entries
        self._prices: dict[str, Price | None] = {}

    def __getitem__(self, name: str) -> Price:
        if name not in self._prices:
            entry = self._entries.get(name) if name != "sample_spec" else None
            self._prices[name] = Price.from_catalog(entry) if isinstance(entry, dict) else None
        price = self._prices[name]
        if price is None:
            raise KeyError(name)
        return price

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._entries if n in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # without converting every entry
        return bool(self._entries)


class Layered(Mapping[str, Price]):
    """Catalogs looked up in order: the first that has a name prices it."""

    def __init__(self, *layers: Mapping[str, Price]) -> None:
        self._layers = layers

    def __getitem__(self, name: str) -> Price:
        for layer in self._layers:
            price = layer.get(name)
            if price is not None:
                return price
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n for layer in self._layers for n in layer))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def load_snapshot() -> LazyCatalog:
    """The catalog bundled with this release of llmrelay."""
    data = orjson.loads(gzip.decompress(SNAPSHOT.read_bytes()))
    return LazyCatalog(data if isinstance(data, dict) else {})


def snapshot_bytes() -> bytes:
    return gzip.decompress(SNAPSHOT.read_bytes())


def _limits(entry: Mapping[str, Any], name: str) -> int | None:
    value = entry.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def catalog_rows(raw: bytes) -> list[dict[str, Any]]:
    """``models`` rows for every priced catalog entry."""
    prices = parse_catalog(raw)
    data = orjson.loads(raw)
    now = utcnow()
    rows = []
    for name, price in prices.items():
        entry = data[name]
        rows.append(
            {
                "model_name": name[:300],
                "litellm_provider": price.provider,
                "input_cost_per_token": price.input,
                "output_cost_per_token": price.output,
                "cache_read_input_token_cost": price.cache_read,
                "cache_creation_input_token_cost": price.cache_write,
                "mode": price.mode,
                "max_input_tokens": _limits(entry, "max_input_tokens"),
                "max_output_tokens": _limits(entry, "max_output_tokens"),
                "updated_at": now,
            }
        )
    return rows


_PRICE_COLUMNS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)


async def sync_catalog(engine: Database, raw: bytes) -> int:
    """Upsert the catalog into ``models`` (by name); returns the number of entries.

    Rows not in the catalog (added by hand) are kept, and so are the prices of rows
    set through the admin API (``price_source = 'admin'``).
    """
    rows = catalog_rows(raw)
    async with engine.begin() as conn:
        await upsert_catalog(conn, rows)
    return len(rows)


async def upsert_catalog(conn: Writer, rows: list[dict[str, Any]]) -> None:
    """Write catalog rows into ``models`` on ``conn`` (the caller's transaction)."""
    table = models
    for start in range(0, len(rows), 500):
        chunk = [{"id": new_id(), **r} for r in rows[start : start + 500]]
        stmt = dialect_insert(conn.dialect.name, table).values(chunk)
        stmt = stmt.on_conflict_do_update(
            index_elements=["model_name"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    *_PRICE_COLUMNS,
                    "litellm_provider",
                    "mode",
                    "max_input_tokens",
                    "max_output_tokens",
                    "updated_at",
                )
            },
            where=table.c.price_source != "admin",
        )
        await conn.execute(stmt)


async def load_db_catalog(engine: Database) -> LazyCatalog:
    """Prices from the ``models`` table (raw values: SQLite hands back floats)."""
    sql = text(
        "SELECT model_name, input_cost_per_token, output_cost_per_token, "
        "cache_read_input_token_cost, cache_creation_input_token_cost, mode, "
        "litellm_provider FROM models"
    )
    entries: dict[str, Any] = {}
    async with engine.connect() as conn:
        for name, inp, outp, read, write, mode, provider in (await conn.execute(sql)).all():
            entries[name] = {
                "input_cost_per_token": inp,
                "output_cost_per_token": outp,
                "cache_read_input_token_cost": read,
                "cache_creation_input_token_cost": write,
                "mode": mode,
                "litellm_provider": provider,
            }
    return LazyCatalog(entries)


async def catalog_state(engine: Database) -> tuple[int, str | None]:
    """Row count and newest update of ``models``: cheap change detection for reloads."""
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT COUNT(*), MAX(updated_at) FROM models"))).one()
    return int(row[0]), str(row[1]) if row[1] is not None else None


async def fetch(url: str, timeout: float = 60.0) -> bytes:
    """Download a catalog (``llmrelay catalog sync --url``)."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s,
            s.get(url) as resp,
        ):
            if resp.status != 200:
                raise CatalogError(f"GET {url} answered HTTP {resp.status}")
            return await resp.read()
    except aiohttp.ClientError as exc:
        raise CatalogError(f"cannot download {url}: {exc}") from exc


def overrides_from_config(prices: Mapping[str, Any]) -> dict[str, Price]:
    """The ``prices:`` section of the config (LiteLLM field names) as :class:`Price`."""
    out: dict[str, Price] = {}
    for name, cfg in prices.items():
        entry = {f: getattr(cfg, f) for f in _PRICE_COLUMNS}
        price = Price.from_catalog({k: v for k, v in entry.items() if v is not None})
        if price is not None:
            out[name] = price
    return out
