"""``/admin/providers``: providers stored in the database, and those of the YAML file.

Providers of the YAML file are listed (``source: config``, ``read_only: true``) but
cannot be changed or deleted here: the file is their truth and would restore them at
the next start. Every change is one transaction with its audit entry; after the commit
the change feed (:mod:`llmrelay.changes`) has every instance reload its registry
(:mod:`llmrelay.providers.reload`), this one before answering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.provider_check import check
from llmrelay.admin.provider_views import parse_body, row_credentials, row_fields, row_raw, view
from llmrelay.errors import Conflict, InvalidRequest, NotFound
from llmrelay.providers.registry import provider_configs
from llmrelay.store.schema import Provider as ProviderRow
from llmrelay.store.schema import new_id, utcnow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/providers", tags=["providers"])

_SECRET_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

Name = Annotated[str, Path(min_length=1, max_length=200)]
RawBody = Annotated[dict[str, Any], Body()]


async def _row(session: AsyncSession, name: str) -> ProviderRow:
    row = await session.scalar(select(ProviderRow).where(ProviderRow.name == name))
    if row is None:
        raise NotFound(f"no provider named {name!r}", param="name")
    return row


def _writable(services: Services, row: ProviderRow) -> None:
    if row.source == "config" or row.name in _configured(services):
        raise Conflict(
            f"provider {row.name!r} is defined in the configuration file: change it there",
            code="provider_from_config",
        )


def _configured(services: Services) -> set[str]:
    return {c.name for c in provider_configs(services.settings, services.env)}


@router.get("", response_model=Page[dict[str, Any]])
async def list_providers(
    principal: Reader,
    request: Request,
    source: Annotated[Literal["config", "db"] | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[dict[str, Any]]:
    services = services_of(request)

    async def work(session: AsyncSession) -> Page[dict[str, Any]]:
        query = select(ProviderRow)
        if source is not None:
            query = query.where(ProviderRow.source == source)
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(query.order_by(ProviderRow.name).limit(limit).offset(offset))
        data = [view(r, row_credentials(services.credentials, r)) for r in rows]
        return Page(data=data, total=total, limit=limit, offset=offset)

    return await db.read(services, work)


@router.post("/reload")
async def reload_providers(principal: Writer, request: Request) -> dict[str, Any]:
    """Read the providers table again (rows changed by SQL, as seed 000 does)."""
    services = services_of(request)
    result = await services.provider_reloader.reload()  # this instance, reported
    audit_entry = {"added": result.added, "changed": result.changed, "removed": result.removed}

    async def work(session: AsyncSession) -> None:
        audit.record(session, principal, "reload", "provider", None, None, audit_entry)

    await db.write(services, work)
    return {k: list(v) for k, v in audit_entry.items()}


@router.get("/{name}")
async def get_provider(name: Name, principal: Reader, request: Request) -> dict[str, Any]:
    services = services_of(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await _row(session, name)
        return view(row, row_credentials(services.credentials, row))

    return await db.read(services, work)


@router.post("", status_code=201)
async def create_provider(body: RawBody, principal: Writer, request: Request) -> dict[str, Any]:
    services = services_of(request)
    cfg = parse_body(body)
    if cfg.name in _configured(services):
        raise Conflict(f"provider {cfg.name!r} is defined in the configuration file")
    config, creds = row_fields(cfg)
    now = utcnow()
    row = ProviderRow(
        id=new_id(),
        name=cfg.name,
        provider_type=cfg.type,
        encrypted_credentials=services.credentials.seal(creds) if creds else None,
        config=config,
        enabled=cfg.enabled,
        source="db",
        created_at=now,
        updated_at=now,
    )

    async def work(session: AsyncSession) -> dict[str, Any]:
        session.add(row)
        await session.flush()
        shown = view(row, creds)
        audit.record(session, principal, "create", "provider", row.name, None, shown)
        return shown

    shown = await db.write(services, work)
    await services.changes.notify("providers")
    return shown


@router.patch("/{name}")
async def update_provider(
    name: Name, body: RawBody, principal: Writer, request: Request
) -> dict[str, Any]:
    """Change some fields; the merged entry is checked like a YAML entry.

    A field set to ``null`` goes back to its default; credentials not named are kept.
    """
    services = services_of(request)
    if body.get("name", name) != name:
        raise InvalidRequest("name: a provider cannot be renamed", param="name")

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await _row(session, name)
        _writable(services, row)
        creds = row_credentials(services.credentials, row)
        if creds is None:  # sealed with another master key: keeping them is impossible
            if not any(k in body for k in ("api_key", *_SECRET_FIELDS)):
                raise Conflict(
                    f"the credentials of provider {name!r} cannot be opened with this "
                    "gateway's master key: send api_key (and any AWS keys) to replace them",
                    code="credentials_unreadable",
                )
            creds = {}
        before = view(row, creds)
        merged = {**row_raw(row, creds), **body}
        cfg = parse_body({k: v for k, v in merged.items() if v is not None})
        config, secrets = row_fields(cfg)
        row.provider_type = cfg.type
        row.config = config
        row.encrypted_credentials = services.credentials.seal(secrets) if secrets else None
        row.enabled = cfg.enabled
        row.updated_at = utcnow()
        after = view(row, secrets)
        audit.record(session, principal, "update", "provider", row.name, before, after)
        return after

    shown = await db.write(services, work)
    await services.changes.notify("providers")
    return shown


@router.delete("/{name}")
async def delete_provider(name: Name, principal: Writer, request: Request) -> dict[str, Any]:
    services = services_of(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await _row(session, name)
        _writable(services, row)
        before = view(row, row_credentials(services.credentials, row))
        await session.delete(row)
        audit.record(session, principal, "delete", "provider", name, before, None)
        return before

    shown = await db.write(services, work)
    await services.changes.notify("providers")
    return shown


@router.post("/{name}/test")
async def test_provider(
    name: Name,
    principal: Writer,
    request: Request,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """One small real call through the provider (costs a token: admin role only)."""
    services = services_of(request)
    model = (body or {}).get("model")
    if model is not None and (not isinstance(model, str) or not 0 < len(model) <= 300):
        raise InvalidRequest("model: a model id of 1 to 300 characters", param="model")
    provider = services.registry.get(name)
    if provider is None:
        raise NotFound(f"no enabled provider named {name!r}", param="name")
    return await check(provider, model, services.router.redactor)
