"""The ``llmrelay`` command: serve, manage keys and route configs, run the mock upstream,
migrate."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from llmrelay import __version__
from llmrelay.admin import commands as admin_commands
from llmrelay.config import ConfigError, Settings, load_settings
from llmrelay.governance import commands as governance_commands
from llmrelay.probe import args as probe_args


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmrelay", description="An LLM gateway.")
    p.add_argument("--version", action="version", version=f"llmrelay {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config file (or LLMRELAY_CONFIG)")
    serve.add_argument("--host", help="listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")

    keys = sub.add_parser("keys", help="manage virtual keys")
    keys.add_argument("--config", help="YAML config file (for database_url)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key; prints it on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--models", help="comma-separated model names or patterns it may use")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--budget", help="monthly budget in USD")
    create.add_argument(
        "--route-config", help="name of the route config used when a request brings none"
    )
    governance_commands.add_key_options(create)
    ksub.add_parser("list", help="list keys (never shows secrets)")
    kimport = ksub.add_parser(
        "import", help="import a seed-002 keys.json (idempotent; real keys never printed)"
    )
    kimport.add_argument("file", help='{"virtual_keys": {"vk_...": {"provider", "api_key"}}}')
    revoke = ksub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")

    routes = sub.add_parser("route-configs", help="manage named route configs in the database")
    routes.add_argument("--config", help="YAML config file (for database_url)")
    rsub = routes.add_subparsers(dest="routes_command", required=True)
    rset = rsub.add_parser("set", help="create or replace a config (validated first)")
    rset.add_argument("name")
    source = rset.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="JSON or YAML file holding the config ('-': stdin)")
    source.add_argument("--json", help="the config as a JSON string")
    rsub.add_parser("list", help="list the configs stored in the database")
    rshow = rsub.add_parser("show", help="print one stored config as JSON")
    rshow.add_argument("name")
    rdel = rsub.add_parser("delete", help="delete a stored config")
    rdel.add_argument("name")
    for leaf in (rset, rshow, rdel, rsub.choices["list"]):  # --config after the command too
        leaf.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    governance_commands.add_parsers(sub)  # teams, usage, catalog
    admin_commands.add_parsers(sub)  # admin-tokens
    probe_args.add_parser(sub)  # probe, probe history

    mock = sub.add_parser(
        "mock-upstream",
        help="run the mock provider server (OpenAI, "
        "Anthropic, Gemini, Bedrock and Azure formats; docs/mock.md)",
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=18080)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument("--config")
    return p


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    from llmrelay.server import serve

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    env = {}
    if args.config:
        env["LLMRELAY_CONFIG"] = os.path.abspath(args.config)
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            env[f"LLMRELAY_{name.upper()}"] = str(value)
    return serve(settings, env)


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from llmrelay.governance import keys as k
    from llmrelay.store import database

    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        sessions = database.sessionmaker(engine)
        if args.keys_command == "create":
            budget = None
            if args.budget is not None:
                try:
                    budget = Decimal(args.budget)
                except InvalidOperation:
                    print(f"error: --budget {args.budget!r} is not a number", file=sys.stderr)
                    return 2
            models = (
                [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            )
            if args.route_config and args.route_config not in settings.route_configs:
                from llmrelay.routing.store import config_exists

                if not await config_exists(sessions, args.route_config):
                    print(
                        f"error: no route config named {args.route_config!r} (neither in "
                        "route_configs nor in the database)",
                        file=sys.stderr,
                    )
                    return 1
            try:
                limits = await governance_commands.key_options(sessions, args)
            except governance_commands.CommandError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            try:
                key, row = await k.create_key(
                    sessions,
                    args.name,
                    models=models,
                    rpm=args.rpm,
                    tpm=args.tpm,
                    budget=budget,
                    route_config=args.route_config,
                    **limits,
                )
            except Exception as exc:
                if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                    print(f"error: a key named {args.name!r} already exists", file=sys.stderr)
                    return 1
                raise
            print(f"created key {row.name} (id {row.id})")
            print(key)
            return 0
        if args.keys_command == "import":
            return await governance_commands.import_keys_file(sessions, settings, args.file)
        if args.keys_command == "list":
            rows = await k.list_keys(sessions)
            print(f"{'NAME':24} {'ID':32} {'PREFIX':16} {'STATUS':8} {'RPM':>6} {'BUDGET':>10}")
            for r in rows:
                status = "revoked" if not r.enabled else "expired" if k.is_expired(r) else "active"
                print(
                    f"{r.name:24} {r.id:32} {r.key_prefix + '…':16} {status:8} "
                    f"{r.rate_limit or '-':>6} {r.monthly_budget or '-':>10}"
                )
            return 0
        if args.keys_command == "revoke":
            if await k.revoke_key(sessions, args.name):
                print(f"revoked key {args.name}")
                return 0
            print(f"error: no active key named {args.name!r}", file=sys.stderr)
            return 1
        return 2
    finally:
        await engine.dispose()


def _read_config_source(args: argparse.Namespace) -> Any:
    import orjson
    import yaml

    if args.json is not None:
        return orjson.loads(args.json)
    text = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115
    return yaml.safe_load(text)  # YAML is a superset of JSON


async def _route_configs(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from llmrelay.changes import publish
    from llmrelay.routing import store
    from llmrelay.routing.config import RouteConfigError
    from llmrelay.store import database

    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        sessions = database.sessionmaker(engine)
        command = args.routes_command
        if command == "set":
            try:
                raw = _read_config_source(args)
                replaced = await store.save_config(sessions, args.name, raw)
            except RouteConfigError as exc:
                print(f"error: invalid route config: {exc}", file=sys.stderr)
                return 1
            except (OSError, ValueError) as exc:
                print(f"error: cannot read the config: {exc}", file=sys.stderr)
                return 1
            if args.name in settings.route_configs:
                print(
                    f"warning: route_configs in the YAML file also defines {args.name!r}; "
                    "the YAML one wins",
                    file=sys.stderr,
                )
            print(f"{'replaced' if replaced else 'created'} route config {args.name}")
            await publish(settings.redis_url, settings.redis_prefix, "route_configs")
            return 0
        if command == "list":
            for row in await store.list_configs(sessions):
                print(f"{row.name:32} updated {row.updated_at:%Y-%m-%d %H:%M:%S}")
            return 0
        rows = {r.name: r for r in await store.list_configs(sessions)}
        if args.name not in rows:
            print(f"error: no route config named {args.name!r} in the database", file=sys.stderr)
            return 1
        if command == "show":
            print(orjson.dumps(rows[args.name].config, option=orjson.OPT_INDENT_2).decode())
            return 0
        await store.delete_config(sessions, args.name)
        print(f"deleted route config {args.name}")
        await publish(settings.redis_url, settings.redis_prefix, "route_configs")
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return asyncio.run(_keys(args, _settings(args)))
        if args.command == "route-configs":
            return asyncio.run(_route_configs(args, _settings(args)))
        if args.command == admin_commands.COMMAND:
            return asyncio.run(admin_commands.run(args, _settings(args)))
        if args.command == probe_args.COMMAND:
            from llmrelay.probe import command as probe_command  # aiohttp, rich: probe only

            return asyncio.run(probe_command.run(args, _settings(args)))
        if args.command in governance_commands.COMMANDS:
            return asyncio.run(governance_commands.run(args, _settings(args)))
        if args.command == "mock-upstream":
            from llmrelay.mock_upstream import serve_forever

            serve_forever(args.host, args.port)
            return 0
        if args.command == "migrate":
            from llmrelay.store.database import migrate_url

            settings = _settings(args)
            asyncio.run(migrate_url(settings.database_url))
            print("database is at the newest schema")
            return 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
