"""``/admin/aliases``: model aliases stored in ``model_aliases``.

An alias's ``target`` is ``provider/model`` or another model name, and must resolve on
this gateway when it is set (a typo is a 400, not a model that fails at the first
call). Aliases of the YAML file are listed (``source: config``) and cannot be changed
here; a stored alias of the same name would be shadowed by the file, so it is a 409.
After each change the change feed (:mod:`llmrelay.changes`) has every instance read
the aliases again (:mod:`llmrelay.routing.aliases`); this one before answering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import Conflict, InvalidRequest, NotFound, UnknownModel
from llmrelay.routing import aliases
from llmrelay.store.schema import Model, ModelAlias, new_id, utcnow
from llmrelay.store.schema import Provider as ProviderRow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/aliases", tags=["aliases"])

AliasName = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x20\x7f]+$")]
Target = Annotated[str, Field(min_length=1, max_length=400, pattern=r"^[^\x00-\x20\x7f]+$")]
AliasPath = Annotated[str, Path(min_length=1, max_length=300)]


class AliasCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: AliasName
    target: Target
    enabled: bool = True


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Target | None = None
    enabled: bool | None = None


class AliasOut(BaseModel):
    id: str | None
    alias: str
    #: What the alias resolves to (``provider/model``, or a model name).
    target: str | None
    enabled: bool
    source: str
    created_at: Timestamp | None


def _check_target(services: Services, target: str) -> None:
    try:
        services.resolver.resolve(target)
    except UnknownModel:
        raise InvalidRequest(
            f"target: {target!r} does not resolve on this gateway (use provider/model)",
            param="target",
            code="model_not_found",
        ) from None


def _not_from_config(services: Services, alias: str) -> None:
    if alias in services.settings.aliases:
        raise Conflict(
            f"alias {alias!r} is defined in the configuration file: change it there",
            code="alias_from_config",
        )


async def _row(session: AsyncSession, alias: str) -> tuple[ModelAlias, str | None]:
    found = (
        await session.execute(
            select(ModelAlias, Model.model_name, ProviderRow.name)
            .outerjoin(Model, Model.id == ModelAlias.target_model_id)
            .outerjoin(ProviderRow, ProviderRow.id == ModelAlias.provider_id)
            .where(ModelAlias.alias == alias)
        )
    ).first()
    if found is None:
        raise NotFound(f"no stored alias {alias!r}", param="alias")
    row, model, provider = found
    return row, aliases.alias_target(row.target, model, provider)


def _out(row: ModelAlias, target: str | None) -> AliasOut:
    return AliasOut(
        id=row.id,
        alias=row.alias,
        target=target,
        enabled=bool(row.enabled),
        source="db",
        created_at=row.created_at,
    )


@router.get("", response_model=Page[AliasOut])
async def list_aliases(
    principal: Reader, request: Request, limit: Limit = 100, offset: Offset = 0
) -> Page[AliasOut]:
    """The YAML file's aliases first (they win), then the stored ones by name."""
    services = services_of(request)
    configured = [
        AliasOut(id=None, alias=a, target=t, enabled=True, source="config", created_at=None)
        for a, t in sorted(services.settings.aliases.items())
    ]

    async def work(session: AsyncSession) -> Page[AliasOut]:
        stored_total = await session.scalar(select(func.count()).select_from(ModelAlias)) or 0
        total = len(configured) + stored_total
        data = configured[offset : offset + limit]
        skip = max(0, offset - len(configured))
        room = limit - len(data)
        if room > 0:
            rows = await session.execute(
                select(ModelAlias, Model.model_name, ProviderRow.name)
                .outerjoin(Model, Model.id == ModelAlias.target_model_id)
                .outerjoin(ProviderRow, ProviderRow.id == ModelAlias.provider_id)
                .order_by(ModelAlias.alias)
                .limit(room)
                .offset(skip)
            )
            data += [_out(r, aliases.alias_target(r.target, m, p)) for r, m, p in rows]
        return Page(data=data, total=total, limit=limit, offset=offset)

    return await db.read(services, work)


@router.get("/{alias}", response_model=AliasOut)
async def get_alias(alias: AliasPath, principal: Reader, request: Request) -> AliasOut:
    services = services_of(request)
    if alias in services.settings.aliases:
        target = services.settings.aliases[alias]
        return AliasOut(
            id=None, alias=alias, target=target, enabled=True, source="config", created_at=None
        )

    async def work(session: AsyncSession) -> AliasOut:
        return _out(*await _row(session, alias))

    return await db.read(services, work)


@router.post("", status_code=201, response_model=AliasOut)
async def create_alias(body: AliasCreate, principal: Writer, request: Request) -> AliasOut:
    services = services_of(request)
    _not_from_config(services, body.alias)
    _check_target(services, body.target)
    row = ModelAlias(
        id=new_id(), alias=body.alias, target=body.target, enabled=body.enabled, created_at=utcnow()
    )

    async def work(session: AsyncSession) -> AliasOut:
        session.add(row)
        await session.flush()
        shown = _out(row, row.target)
        after = shown.model_dump(mode="json")
        audit.record(session, principal, "create", "alias", row.alias, None, after)
        return shown

    shown = await db.write(services, work)
    await services.changes.notify("aliases")
    return shown


@router.patch("/{alias}", response_model=AliasOut)
async def update_alias(
    alias: AliasPath, body: AliasUpdate, principal: Writer, request: Request
) -> AliasOut:
    services = services_of(request)
    _not_from_config(services, alias)
    if body.target is not None:
        _check_target(services, body.target)

    async def work(session: AsyncSession) -> AliasOut:
        row, target = await _row(session, alias)
        before = _out(row, target).model_dump(mode="json")
        if body.target is not None:
            row.target, row.target_model_id, row.provider_id = body.target, None, None
            target = body.target
        if body.enabled is not None:
            row.enabled = body.enabled
        shown = _out(row, target)
        audit.record(
            session, principal, "update", "alias", alias, before, shown.model_dump(mode="json")
        )
        return shown

    shown = await db.write(services, work)
    await services.changes.notify("aliases")
    return shown


@router.delete("/{alias}", response_model=AliasOut)
async def delete_alias(alias: AliasPath, principal: Writer, request: Request) -> AliasOut:
    services = services_of(request)
    _not_from_config(services, alias)

    async def work(session: AsyncSession) -> AliasOut:
        row, target = await _row(session, alias)
        shown = _out(row, target)
        await session.delete(row)
        audit.record(session, principal, "delete", "alias", alias, shown.model_dump(mode="json"))
        return shown

    shown = await db.write(services, work)
    await services.changes.notify("aliases")
    return shown
