"""``/admin/route-configs``: named route configs stored in ``route_configs``.

A body is the config itself (the JSON ``llmrelay route-configs set`` reads), checked by
:func:`~llmrelay.routing.config.parse_route_config` (a 400 whose ``param`` is the bad
field's path, ``targets[1].weight``) and bound against this gateway's providers (an
unknown provider is a 400 too). Configs of the YAML file are listed read-only. After
each change the change feed (:mod:`llmrelay.changes`) refreshes the route config store
of every instance (this one before answering), so the next call uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.json_size import encoded
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import Conflict, InvalidRequest, NotFound, UnknownModel
from llmrelay.routing.config import RouteConfigError, parse_route_config
from llmrelay.routing.plan import BindError, bind
from llmrelay.store.bounds import JSON_LIMIT
from llmrelay.store.schema import RouteConfig, new_id, utcnow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/route-configs", tags=["route configs"])

ConfigName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


class RouteConfigOut(BaseModel):
    name: str
    source: str
    config: dict[str, Any]
    created_at: Timestamp | None
    updated_at: Timestamp | None


def _validate(services: Services, raw: dict[str, Any]) -> None:
    if len(encoded(raw, "config")) > JSON_LIMIT:
        raise InvalidRequest(f"config: larger than {JSON_LIMIT} bytes", param="config")
    try:
        spec = parse_route_config(raw)
    except RouteConfigError as exc:
        raise InvalidRequest(str(exc)[:500], param=exc.path or None, code="invalid_value") from None
    try:
        bind(spec, services.registry, services.resolver, "<request model>")
    except BindError as exc:
        raise InvalidRequest(str(exc)[:500], param=exc.path or None, code="invalid_value") from None
    except UnknownModel:
        pass  # a config of only settings: the request's model, per call


def _static(services: Services) -> dict[str, Any]:
    return dict(services.settings.route_configs)


def _out(row: RouteConfig) -> RouteConfigOut:
    return RouteConfigOut(
        name=row.name,
        source="db",
        config=row.config,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("", response_model=Page[RouteConfigOut])
async def list_route_configs(
    principal: Reader, request: Request, limit: Limit = 100, offset: Offset = 0
) -> Page[RouteConfigOut]:
    """The YAML file's configs first (they win), then the stored ones by name."""
    services = services_of(request)
    static = [
        RouteConfigOut(name=n, source="config", config=c, created_at=None, updated_at=None)
        for n, c in sorted(_static(services).items())
    ]

    async def work(session: AsyncSession) -> Page[RouteConfigOut]:
        stored = await session.scalar(select(func.count()).select_from(RouteConfig)) or 0
        data = static[offset : offset + limit]
        room = limit - len(data)
        if room > 0:
            rows = await session.scalars(
                select(RouteConfig)
                .order_by(RouteConfig.name)
                .limit(room)
                .offset(max(0, offset - len(static)))
            )
            data += [_out(r) for r in rows]
        return Page(data=data, total=len(static) + stored, limit=limit, offset=offset)

    return await db.read(services, work)


@router.get("/{name}", response_model=RouteConfigOut)
async def get_route_config(name: ConfigName, principal: Reader, request: Request) -> RouteConfigOut:
    services = services_of(request)
    static = _static(services)
    if name in static:
        return RouteConfigOut(
            name=name, source="config", config=static[name], created_at=None, updated_at=None
        )

    async def work(session: AsyncSession) -> RouteConfigOut:
        row = await session.scalar(select(RouteConfig).where(RouteConfig.name == name))
        if row is None:
            raise NotFound(f"no route config named {name!r}", param="name")
        return _out(row)

    return await db.read(services, work)


@router.put("/{name}", response_model=RouteConfigOut)
async def put_route_config(
    name: ConfigName,
    body: Annotated[dict[str, Any], Body()],
    principal: Writer,
    request: Request,
    response: Response,
) -> RouteConfigOut:
    """Create or replace a config (201 when it is new)."""
    services = services_of(request)
    if name in _static(services):
        raise Conflict(f"route config {name!r} is defined in the configuration file")
    _validate(services, body)

    async def work(session: AsyncSession) -> tuple[RouteConfigOut, bool]:
        row = await session.scalar(select(RouteConfig).where(RouteConfig.name == name))
        now = utcnow()
        before = None if row is None else _out(row).model_dump(mode="json")
        if row is None:
            row = RouteConfig(id=new_id(), name=name, config=body, created_at=now, updated_at=now)
            session.add(row)
        else:
            row.config, row.updated_at = body, now
        await session.flush()
        shown = _out(row)
        action = "create" if before is None else "update"
        after = shown.model_dump(mode="json")
        audit.record(session, principal, action, "route_config", name, before, after)
        return shown, before is None

    shown, created = await db.write(services, work)
    await services.changes.notify("route_configs")
    response.status_code = 201 if created else 200
    return shown


@router.delete("/{name}", response_model=RouteConfigOut)
async def delete_route_config(
    name: ConfigName, principal: Writer, request: Request
) -> RouteConfigOut:
    services = services_of(request)
    if name in _static(services):
        raise Conflict(f"route config {name!r} is defined in the configuration file")

    async def work(session: AsyncSession) -> RouteConfigOut:
        row = await session.scalar(select(RouteConfig).where(RouteConfig.name == name))
        if row is None:
            raise NotFound(f"no route config named {name!r}", param="name")
        shown = _out(row)
        await session.delete(row)
        before = shown.model_dump(mode="json")
        audit.record(session, principal, "delete", "route_config", name, before, None)
        return shown

    shown = await db.write(services, work)
    await services.changes.notify("route_configs")
    return shown
