"""``llmrelay admin-tokens``: create, list and revoke admin API tokens from the shell
(the first token of a gateway has to come from somewhere other than the API)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from llmrelay.admin.roles import ROLES
from llmrelay.store.ids import utcnow
from llmrelay.store.tables import admin_tokens

if TYPE_CHECKING:
    from llmrelay.config import Settings

COMMAND = "admin-tokens"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser(COMMAND, help="manage admin API tokens (roles admin, viewer)")
    tokens.add_argument("--config", help="YAML config file (for database_url)")
    tsub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tsub.add_parser("create", help="create a token; prints it on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=ROLES, default="viewer")
    tsub.add_parser("list", help="list tokens (never shows them)")
    revoke = tsub.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here, not with the parser above: ``llmrelay serve`` builds the parser too.
    from llmrelay.admin.auth import create_token
    from llmrelay.store import database

    engine = database.create_engine(settings.database_url)
    try:
        await database.migrate(engine)
        sessions = database.sessionmaker(engine)
        if args.tokens_command == "create":
            async with sessions() as session:
                taken = await session.scalar(
                    select(admin_tokens.c.id).where(admin_tokens.c.name == args.name)
                )
            if taken is not None:
                print(f"error: an admin token named {args.name!r} exists", file=sys.stderr)
                return 1
            token, row = await create_token(sessions, args.name, args.role)
            print(f"created admin token {row.name} ({row.role}); it is shown only now:")
            print(token)
            return 0
        if args.tokens_command == "list":
            async with sessions() as session:
                t = admin_tokens
                rows = await session.execute(select(t).order_by(t.c.created_at))
                for r in rows:
                    state = "revoked" if r.revoked_at else "active"
                    print(f"{r.name:32} {r.role:7} {r.token_prefix}…  {state}")
            return 0
        async with sessions() as session, session.begin():
            done = await session.execute(
                update(admin_tokens)
                .where(admin_tokens.c.name == args.name, admin_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        if not done.rowcount:
            print(f"error: no active admin token named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked admin token {args.name}")
        return 0
    finally:
        await engine.dispose()
