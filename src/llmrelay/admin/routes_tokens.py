"""``/admin/tokens``: admin tokens with a role (``admin`` or ``viewer``).

The token is returned once, by the create call; listings show its prefix only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.auth import TOKEN_PREFIX, Role, generate_token, hash_token
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import NotFound
from llmrelay.store.schema import AdminToken, new_id, utcnow

router = APIRouter(prefix="/admin/tokens", tags=["admin tokens"])

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Role = "viewer"


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    token_prefix: str
    created_at: Timestamp
    revoked_at: Timestamp | None


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token: shown only in this answer")


def _out(row: AdminToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        role=row.role,
        token_prefix=row.token_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, principal: Writer, request: Request) -> TokenCreated:
    token = generate_token()
    row = AdminToken(
        id=new_id(),
        name=body.name,
        token_hash=hash_token(token),
        token_prefix=token[: len(TOKEN_PREFIX) + 4],
        role=body.role,
        created_at=utcnow(),
    )

    async def work(session: AsyncSession) -> None:
        session.add(row)
        await session.flush()
        audit.record(
            session,
            principal,
            "create",
            "admin_token",
            row.id,
            None,
            _out(row).model_dump(mode="json"),
        )

    await db.write(services_of(request), work)
    return TokenCreated(**_out(row).model_dump(), token=token)


@router.get("", response_model=Page[TokenOut])
async def list_tokens(
    principal: Reader, request: Request, limit: Limit = 100, offset: Offset = 0
) -> Page[TokenOut]:
    async def work(session: AsyncSession) -> Page[TokenOut]:
        total = await session.scalar(select(func.count()).select_from(AdminToken)) or 0
        rows = await session.scalars(
            select(AdminToken)
            .order_by(AdminToken.created_at, AdminToken.id)
            .limit(limit)
            .offset(offset)
        )
        return Page(data=[_out(r) for r in rows], total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


@router.delete("/{token_id}", response_model=TokenOut)
async def revoke_token(
    token_id: Annotated[str, Path(max_length=64)], principal: Writer, request: Request
) -> TokenOut:
    """Revoke a token: it stops working at once (tokens are not cached)."""

    async def work(session: AsyncSession) -> TokenOut:
        row = await session.get(AdminToken, token_id)
        if row is None:
            raise NotFound(f"no admin token with id {token_id!r}")
        before = _out(row).model_dump(mode="json")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        after = _out(row)
        audit.record(
            session,
            principal,
            "revoke",
            "admin_token",
            row.id,
            before,
            after.model_dump(mode="json"),
        )
        return after

    return await db.write(services_of(request), work)
