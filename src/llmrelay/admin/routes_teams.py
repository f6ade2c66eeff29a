"""``/admin/teams``: groups of keys sharing limits and budgets (applied to all together).

A team is addressed by its id or its name. Deleting a team that still has keys is a
``409`` naming how many, unless ``?force=true``: then its keys are kept, without a team
(a forced delete never deletes keys; delete those through ``/admin/virtual-keys``).
Every change forgets the team's keys in this instance's key cache, so new limits apply
to the next request here and within ``key_cache_ttl`` elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.routes_keys import (
    Count,
    KeyOut,
    Money,
    MoneyOut,
    Name,
    bounded_metadata,
    key_out,
)
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import Conflict, InvalidRequest, NotFound
from llmrelay.store.schema import ApiKey, Team, new_id, utcnow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/teams", tags=["teams"])

TeamRef = Annotated[str, Path(max_length=200)]


class TeamFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate_limit: Count | None = Field(None, description="requests per minute, all keys")
    rph_limit: Count | None = Field(None, description="requests per hour, all keys")
    tpm_limit: Count | None = Field(None, description="tokens per minute, all keys")
    budget_limit_usd: Money | None = Field(None, description="monthly budget in USD")
    daily_budget_usd: Money | None = None
    metadata: dict[str, Any] | None = None


class TeamCreate(TeamFields):
    name: Name


class TeamUpdate(TeamFields):
    name: Name | None = None


class TeamOut(BaseModel):
    id: str
    name: str
    rate_limit: int | None
    rph_limit: int | None
    tpm_limit: int | None
    budget_limit_usd: MoneyOut
    daily_budget_usd: MoneyOut
    metadata: dict[str, Any] | None
    created_at: Timestamp
    keys: int = Field(description="keys in the team")


_COLUMNS = {
    "name": "name",
    "rate_limit": "rate_limit",
    "rph_limit": "rph_limit",
    "tpm_limit": "tpm_limit",
    "budget_limit_usd": "monthly_budget",
    "daily_budget_usd": "daily_budget",
    "metadata": "metadata_",
}


async def _count(session: AsyncSession, team_id: str) -> int:
    return await session.scalar(select(func.count()).where(ApiKey.team_id == team_id)) or 0


async def _out(session: AsyncSession, row: Team) -> TeamOut:
    return TeamOut(
        id=row.id,
        name=row.name,
        rate_limit=row.rate_limit,
        rph_limit=row.rph_limit,
        tpm_limit=row.tpm_limit,
        budget_limit_usd=row.monthly_budget,
        daily_budget_usd=row.daily_budget,
        metadata=row.metadata_,
        created_at=row.created_at,
        keys=await _count(session, row.id),
    )


async def _get(session: AsyncSession, ref: str) -> Team:
    row = await session.scalar(select(Team).where(or_(Team.id == ref, Team.name == ref)))
    if row is None:
        raise NotFound(f"no team {ref!r}", param="team")
    return row


async def _key_ids(session: AsyncSession, team_id: str) -> list[str]:
    return list(await session.scalars(select(ApiKey.id).where(ApiKey.team_id == team_id)))


def _forget(services: Services, key_ids: list[str]) -> None:
    for key_id in key_ids:
        services.keys.forget(key_id)


@router.post("", status_code=201, response_model=TeamOut)
async def create_team(body: TeamCreate, principal: Writer, request: Request) -> TeamOut:
    async def work(session: AsyncSession) -> TeamOut:
        row = Team(id=new_id(), created_at=utcnow())
        for field, column in _COLUMNS.items():
            setattr(row, column, getattr(body, field))
        row.metadata_ = bounded_metadata(body.metadata)
        session.add(row)
        await session.flush()
        out = await _out(session, row)
        audit.record(
            session, principal, "create", "team", row.id, None, out.model_dump(mode="json")
        )
        return out

    return await db.write(services_of(request), work)


@router.get("", response_model=Page[TeamOut])
async def list_teams(
    principal: Reader, request: Request, limit: Limit = 100, offset: Offset = 0
) -> Page[TeamOut]:
    async def work(session: AsyncSession) -> Page[TeamOut]:
        total = await session.scalar(select(func.count()).select_from(Team)) or 0
        rows = await session.scalars(
            select(Team).order_by(Team.created_at, Team.id).limit(limit).offset(offset)
        )
        data = [await _out(session, r) for r in rows.all()]
        return Page(data=data, total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


@router.get("/{team}", response_model=TeamOut)
async def get_team(team: TeamRef, principal: Reader, request: Request) -> TeamOut:
    async def work(session: AsyncSession) -> TeamOut:
        return await _out(session, await _get(session, team))

    return await db.read(services_of(request), work)


@router.get("/{team}/keys", response_model=Page[KeyOut])
async def team_keys(
    team: TeamRef, principal: Reader, request: Request, limit: Limit = 100, offset: Offset = 0
) -> Page[KeyOut]:
    """The team's keys (members), as ``/admin/virtual-keys`` lists them: no secrets."""

    async def work(session: AsyncSession) -> Page[KeyOut]:
        row = await _get(session, team)
        total = await _count(session, row.id)
        keys = await session.scalars(
            select(ApiKey)
            .where(ApiKey.team_id == row.id)
            .order_by(ApiKey.created_at, ApiKey.id)
            .limit(limit)
            .offset(offset)
        )
        return Page(data=[key_out(k) for k in keys], total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


@router.patch("/{team}", response_model=TeamOut)
async def update_team(
    team: TeamRef, body: TeamUpdate, principal: Writer, request: Request
) -> TeamOut:
    """Change what is sent; a limit sent as ``null`` is cleared."""
    services = services_of(request)
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise InvalidRequest("name: may not be null", param="name")
    members: list[str] = []

    async def work(session: AsyncSession) -> TeamOut:
        row = await _get(session, team)
        before = (await _out(session, row)).model_dump(mode="json")
        for field, column in _COLUMNS.items():
            if field in sent:
                setattr(row, column, getattr(body, field))
        if "metadata" in sent:
            row.metadata_ = bounded_metadata(body.metadata)
        await session.flush()
        out = await _out(session, row)
        audit.record(
            session, principal, "update", "team", row.id, before, out.model_dump(mode="json")
        )
        members.extend(await _key_ids(session, row.id))
        return out

    out = await db.write(services, work)
    _forget(services, members)
    return out


@router.delete("/{team}", response_model=TeamOut)
async def delete_team(
    team: TeamRef,
    principal: Writer,
    request: Request,
    force: Annotated[
        bool, Query(description="delete even with keys (they stay, teamless)")
    ] = False,
) -> TeamOut:
    services = services_of(request)
    members: list[str] = []

    async def work(session: AsyncSession) -> TeamOut:
        row = await _get(session, team)
        out = await _out(session, row)
        if out.keys and not force:
            raise Conflict(
                f"team {row.name!r} has {out.keys} key(s); move or delete them, or delete "
                "with ?force=true (its keys are kept, without a team)",
                code="team_has_keys",
            )
        members.extend(await _key_ids(session, row.id))
        # Explicitly, not by the foreign key: SQLite enforces it only when asked to.
        await session.execute(update(ApiKey).where(ApiKey.team_id == row.id).values(team_id=None))
        await session.delete(row)
        audit.record(session, principal, "delete", "team", row.id, out.model_dump(mode="json"))
        return out

    out = await db.write(services, work)
    _forget(services, members)
    return out
