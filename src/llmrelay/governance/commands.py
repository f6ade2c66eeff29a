"""``llmrelay teams``, ``llmrelay usage``, ``llmrelay catalog`` and the governance
options of ``llmrelay keys create`` (``--team``, ``--rph``, ``--daily-budget``,
``--model-limit``, ``--plugins``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from llmrelay.config import Settings
    from llmrelay.store.database import Database

COMMANDS = ("teams", "usage", "catalog")


class CommandError(Exception):
    """A user error: printed as ``error: ...`` with exit status 1."""


def add_parsers(sub: Any) -> None:
    teams = sub.add_parser("teams", help="manage teams (limits and budgets shared by keys)")
    teams.add_argument("--config", help="YAML config file (for database_url)")
    tsub = teams.add_subparsers(dest="teams_command", required=True)
    create = tsub.add_parser("create", help="create a team")
    create.add_argument("--name", required=True)
    create.add_argument("--rpm", type=int, help="requests per minute, all its keys together")
    create.add_argument("--rph", type=int, help="requests per hour, all its keys together")
    create.add_argument("--tpm", type=int, help="tokens per minute, all its keys together")
    create.add_argument("--budget", help="monthly budget in USD")
    create.add_argument("--daily-budget", help="daily budget in USD (UTC days)")
    tsub.add_parser("list", help="list teams")

    usage = sub.add_parser("usage", help="monthly usage and cost per key (UTC months)")
    usage.add_argument("--config", help="YAML config file (for database_url)")
    usage.add_argument("--month", help="YYYY-MM (default: every month)")
    usage.add_argument("--key", help="only this key (by name)")
    usage.add_argument(
        "--include-probes",
        action="store_true",
        help="count the calls of llmrelay probe too (left out by default)",
    )

    catalog = sub.add_parser("catalog", help="the model price catalog (LiteLLM format)")
    catalog.add_argument("--config", help="YAML config file (for database_url)")
    csub = catalog.add_subparsers(dest="catalog_command", required=True)
    sync = csub.add_parser(
        "sync",
        help="load the catalog into the models table (default: the snapshot bundled with llmrelay)",
    )
    source = sync.add_mutually_exclusive_group()
    source.add_argument("--url", help="download model_prices_and_context_window.json from here")
    source.add_argument("--file", help="read a catalog file in the LiteLLM format")
    show = csub.add_parser("show", help="the price llmrelay uses for a model")
    show.add_argument("model", help="catalog name, or provider/model as requested")
    for leaf in (create, tsub.choices["list"], sync, show):  # --config after the command too
        leaf.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_key_options(create: argparse.ArgumentParser) -> None:
    create.add_argument("--team", help="team name: its limits and budgets apply as well")
    create.add_argument("--rph", type=int, help="requests per hour")
    create.add_argument("--daily-budget", help="daily budget in USD (UTC days)")
    create.add_argument(
        "--model-limit",
        action="append",
        default=[],
        metavar="PATTERN:rpm=N,tpm=N",
        help="a limit for this key on matching models (repeatable), e.g. 'gpt-4o*:rpm=10'",
    )
    create.add_argument(
        "--plugins",
        metavar="JSON",
        help='plug-ins for this key\'s calls, e.g. \'{"cache": {"ttl": 60}}\' (docs/plugins.md)',
    )
    create.add_argument(
        "--expires-at",
        metavar="TIME",
        help="when the key stops working, ISO 8601 (no zone: UTC), e.g. 2027-01-31T00:00:00Z",
    )


def usd(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{flag} {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise CommandError(f"{flag} must be a non-negative amount of USD")
    return amount


_MODEL_LIMIT = re.compile(r"^(?P<pattern>[^:]+):(?P<limits>.+)$")


def parse_model_limits(values: list[str]) -> dict[str, dict[str, int]] | None:
    out: dict[str, dict[str, int]] = {}
    for value in values:
        match = _MODEL_LIMIT.match(value)
        if match is None:
            raise CommandError(f"--model-limit {value!r}: expected PATTERN:rpm=N[,rph=N][,tpm=N]")
        limits: dict[str, int] = {}
        for part in match["limits"].split(","):
            name, _, number = part.strip().partition("=")
            if name not in ("rpm", "rph", "tpm") or not number.isdigit():
                raise CommandError(
                    f"--model-limit {value!r}: {part!r} is not rpm=N, rph=N or tpm=N"
                )
            limits[name] = int(number)
        out[match["pattern"].strip()] = limits
    return out or None


async def key_options(
    sessions: async_sessionmaker[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """``create_key`` arguments for the governance options of ``keys create``."""
    from llmrelay.store.schema import Team

    team_id = None
    if args.team:
        async with sessions() as session:
            team_id = await session.scalar(select(Team.id).where(Team.name == args.team))
        if team_id is None:
            raise CommandError(
                f"no team named {args.team!r} (create it with `llmrelay teams create`)"
            )
    return {
        "rph": args.rph,
        "daily_budget": usd(args.daily_budget, "--daily-budget"),
        "team_id": team_id,
        "model_limits": parse_model_limits(args.model_limit),
        "metadata": plugin_metadata(args.plugins),
        "expires_at": expiry(args.expires_at),
    }


def expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--expires-at {value!r}: expected an ISO 8601 time such as 2027-01-31T00:00:00Z"
        ) from None


def plugin_metadata(raw: str | None) -> dict[str, Any] | None:
    """``--plugins`` as the key's ``metadata.plugins``: ``{name: {options}}``."""
    if raw is None:
        return None
    try:
        plugins = json.loads(raw)
    except ValueError:
        raise CommandError("--plugins must be a JSON object") from None
    if not isinstance(plugins, dict) or not all(
        isinstance(name, str) and isinstance(options, dict) for name, options in plugins.items()
    ):
        raise CommandError(
            '--plugins must map plug-in names to option objects, e.g. \'{"cache": {"ttl": 60}}\''
        )
    return {"plugins": plugins}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from llmrelay.store import database

    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        if args.command == "teams":
            return await _teams(args, database.sessionmaker(engine))
        if args.command == "usage":
            return await _usage(args, engine)
        return await _catalog(args, engine, settings)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


async def _teams(args: argparse.Namespace, sessions: async_sessionmaker[Any]) -> int:
    from llmrelay.store.schema import Team, new_id

    if args.teams_command == "create":
        for flag in ("rpm", "rph", "tpm"):
            value = getattr(args, flag)
            if value is not None and value < 0:
                raise CommandError(f"--{flag} must not be negative")
        team = Team(
            id=new_id(),
            name=args.name,
            rate_limit=args.rpm,
            rph_limit=args.rph,
            tpm_limit=args.tpm,
            monthly_budget=usd(args.budget, "--budget"),
            daily_budget=usd(args.daily_budget, "--daily-budget"),
        )
        async with sessions() as session:
            if await session.scalar(select(Team.id).where(Team.name == args.name)):
                raise CommandError(f"a team named {args.name!r} already exists")
            session.add(team)
            await session.commit()
        print(f"created team {team.name} (id {team.id})")
        return 0
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT name, id, rate_limit, rph_limit, tpm_limit, monthly_budget, "
                    "daily_budget, "
                    "(SELECT COUNT(*) FROM api_keys k WHERE k.team_id = t.id) FROM teams t "
                    "ORDER BY name"
                )
            )
        ).all()
    print(
        f"{'NAME':24} {'ID':32} {'RPM':>6} {'RPH':>7} {'TPM':>8} {'BUDGET':>10} "
        f"{'DAILY':>8} {'KEYS':>5}"
    )
    for name, team_id, rpm, rph, tpm, budget, daily, keys in rows:
        print(
            f"{name:24} {team_id:32} {_cell(rpm):>6} {_cell(rph):>7} {_cell(tpm):>8} "
            f"{_cell(budget):>10} {_cell(daily):>8} {keys:>5}"
        )
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | Decimal):
        return f"{Decimal(str(value)).normalize():f}"
    return str(value)


async def _usage(args: argparse.Namespace, engine: Database) -> int:
    """Per key and UTC month, summed from the daily rollup (as ``/admin/usage`` is): the
    calls of ``llmrelay probe`` are left out unless ``--include-probes``."""
    from llmrelay.admin.usage_query import UsageFilter, usage_rows
    from llmrelay.governance.pricing import format_usd
    from llmrelay.store.database import sessionmaker
    from llmrelay.store.schema import ApiKey

    start = end = None
    if args.month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", args.month)
        if match is None or not 1 <= int(match[2]) <= 12:
            raise CommandError(f"--month {args.month!r}: expected YYYY-MM")
        year, month = int(match[1]), int(match[2])
        start = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    async with sessionmaker(engine)() as session:
        names = {i: n for i, n in (await session.execute(select(ApiKey.id, ApiKey.name))).all()}
        key_id = None
        if args.key:
            key_id = next((i for i, n in names.items() if n == args.key), None)
            if key_id is None:
                raise CommandError(f"no key named {args.key!r}")
        filters = UsageFilter(key=key_id, start=start, end=end, include_probes=args.include_probes)
        rows, _, _ = await usage_rows(session, filters, "month", ("key",), 1_000_000, 0)
    rows = [r for r in rows if r["key"] in names]  # usage of deleted keys: no name to show
    rows.sort(key=lambda r: (-int(r["period"].replace("-", "")), names[r["key"]]))
    print(f"{'KEY':24} {'MONTH':7} {'REQUESTS':>9} {'TOKENS':>12} {'COST USD':>18}")
    for r in rows:
        tokens = r["prompt_tokens"] + r["completion_tokens"]
        print(
            f"{names[r['key']]:24} {r['period']:7} {r['requests']:>9} {tokens:>12} "
            f"{format_usd(r['cost_nanos']):>18}"
        )
    return 0


async def _catalog(args: argparse.Namespace, engine: Database, settings: Settings) -> int:
    from llmrelay.governance import catalog

    if args.catalog_command == "sync":
        if args.url:
            try:
                raw = await catalog.fetch(args.url)
            except catalog.CatalogError as exc:
                raise CommandError(str(exc)) from exc
            source = args.url
        elif args.file:
            try:
                raw = await asyncio.to_thread(Path(args.file).read_bytes)
            except OSError as exc:
                raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
            source = args.file
        else:
            raw = catalog.snapshot_bytes()
            source = "the bundled snapshot"
        try:
            count = await catalog.sync_catalog(engine, raw)
        except catalog.CatalogError as exc:
            raise CommandError(str(exc)) from exc
        print(f"synced {count} priced models from {source} into the models table")
        return 0
    from llmrelay.governance.pricing import PriceBook
    from llmrelay.governance.startup import load_prices

    book = await load_prices(settings, engine)
    provider, _, model = args.model.partition("/")
    names = [args.model] if not model else PriceBook.candidates(provider, provider, model)
    for name in names:
        price = book.get(name)
        if price is not None:
            print(
                f"{name}: input {price.input:f} output {price.output:f} "
                f"cache_read {_cell(price.cache_read)} cache_write {_cell(price.cache_write)} "
                f"USD/token ({price.provider or '-'}, {price.mode or '-'})"
            )
            return 0
    raise CommandError(f"no price for {args.model} (tried: {', '.join(names)})")


async def import_keys_file(sessions: async_sessionmaker[Any], settings: Settings, path: str) -> int:
    """``llmrelay keys import FILE``: seed 002's keys.json into the keys table."""
    import os

    from llmrelay.governance import keys_file
    from llmrelay.providers.registry import provider_configs
    from llmrelay.services import credential_secret
    from llmrelay.store.credentials import CredentialBox
    from llmrelay.store.schema import Provider

    try:
        entries = keys_file.parse(Path(path))
        async with sessions() as session:
            stored = set(await session.scalars(select(Provider.name)))
        names = {p.name for p in provider_configs(settings, os.environ)} | stored
        if settings.mock_provider:
            names.add("mock")
        keys_file.check_providers(entries, path, names.__contains__)
    except keys_file.KeysFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    box = CredentialBox(credential_secret(settings, os.environ))
    report = await keys_file.import_entries(sessions, box, entries)
    print(f"imported {path}: {report}")
    return 0
