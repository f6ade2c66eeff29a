"""The ``llmrelay`` command: serve, manage keys, run the mock upstream, migrate."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from llmrelay import __version__
from llmrelay.config import ConfigError, Settings, load_settings


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
    ksub.add_parser("list", help="list keys (never shows secrets)")
    revoke = ksub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")

    mock = sub.add_parser("mock-upstream", help="run the mock OpenAI-format provider server")
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
            models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models \
                else None
            try:
                key, row = await k.create_key(
                    sessions, args.name, models=models, rpm=args.rpm, tpm=args.tpm,
                    budget=budget,
                )
            except Exception as exc:
                if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                    print(f"error: a key named {args.name!r} already exists", file=sys.stderr)
                    return 1
                raise
            print(f"created key {row.name} (id {row.id})")
            print(key)
            return 0
        if args.keys_command == "list":
            rows = await k.list_keys(sessions)
            print(f"{'NAME':24} {'ID':32} {'PREFIX':16} {'STATUS':8} {'RPM':>6} {'BUDGET':>10}")
            for r in rows:
                status = "active" if r.enabled else "revoked"
                print(f"{r.name:24} {r.id:32} {r.key_prefix + '…':16} {status:8} "
                      f"{r.rate_limit or '-':>6} {r.monthly_budget or '-':>10}")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return asyncio.run(_keys(args, _settings(args)))
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
