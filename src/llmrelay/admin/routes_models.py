"""``/admin/models``: the price catalog (the ``models`` table), price overrides, sync.

Prices are USD per token as decimal strings (the catalog's field names), exact: the
gateway charges integer nano-dollars computed from them (:mod:`llmrelay.governance
.pricing`). A price set here marks the row ``price_source: admin``, which a later
catalog sync leaves alone; the config file's ``prices:`` still win over both. After a
change the change feed has every instance's governor reload its prices (this one before
answering), so the next call is charged at them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import InvalidRequest, NotFound
from llmrelay.governance import catalog
from llmrelay.governance.pricing import to_price
from llmrelay.store.schema import Model, new_id, utcnow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/models", tags=["models"])

ModelName = Annotated[str, Path(min_length=1, max_length=300)]
#: Seconds a catalog sync's transaction may take (the bundled snapshot: ~4,000 rows).
SYNC_TIMEOUT = 120.0
PriceValue = Annotated[Decimal, Field(ge=0, le=1, max_digits=24, decimal_places=15)]


class ModelOut(BaseModel):
    id: str
    model_name: str
    litellm_provider: str | None
    mode: str | None
    input_cost_per_token: str | None
    output_cost_per_token: str | None
    cache_read_input_token_cost: str | None
    cache_creation_input_token_cost: str | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    price_source: str
    updated_at: Timestamp | None


class Prices(BaseModel):
    """Prices to set (USD per token); a field left out keeps its value, ``null`` clears
    a cache price (billed as ordinary input then)."""

    model_config = ConfigDict(extra="forbid")
    input_cost_per_token: PriceValue | None = None
    output_cost_per_token: PriceValue | None = None
    cache_read_input_token_cost: PriceValue | None = None
    cache_creation_input_token_cost: PriceValue | None = None


class ModelCreate(Prices):
    model_name: Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")]
    litellm_provider: Annotated[str | None, Field(max_length=100)] = None
    mode: Annotated[str | None, Field(max_length=50)] = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: A LiteLLM ``model_prices_and_context_window.json``; the bundled snapshot if absent.
    url: HttpUrl | None = None


def _price(value: Any) -> str | None:
    price = to_price(value)
    return None if price is None else f"{price:f}"


def _out(row: Model) -> ModelOut:
    return ModelOut(
        id=row.id,
        model_name=row.model_name,
        litellm_provider=row.litellm_provider,
        mode=row.mode,
        input_cost_per_token=_price(row.input_cost_per_token),
        output_cost_per_token=_price(row.output_cost_per_token),
        cache_read_input_token_cost=_price(row.cache_read_input_token_cost),
        cache_creation_input_token_cost=_price(row.cache_creation_input_token_cost),
        max_input_tokens=row.max_input_tokens,
        max_output_tokens=row.max_output_tokens,
        price_source=row.price_source or "catalog",
        updated_at=row.updated_at,
    )


async def _reload_prices(services: Services) -> None:
    """Publish the change: every instance (this one first) reloads its prices."""
    await services.changes.notify("models")


@router.get("", response_model=Page[ModelOut])
async def list_models(
    principal: Reader,
    request: Request,
    provider: Annotated[str | None, Query(max_length=100, description="litellm_provider")] = None,
    search: Annotated[str | None, Query(max_length=300, description="part of the name")] = None,
    price_source: Annotated[str | None, Query(pattern="^(catalog|admin)$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ModelOut]:
    query = select(Model)
    if provider is not None:
        query = query.where(Model.litellm_provider == provider)
    if search is not None:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Model.model_name.like(f"%{escaped}%", escape="\\"))
    if price_source is not None:
        query = query.where(Model.price_source == price_source)

    async def work(session: AsyncSession) -> Page[ModelOut]:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(query.order_by(Model.model_name).limit(limit).offset(offset))
        return Page(data=[_out(r) for r in rows], total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


@router.post("/sync")
async def sync_models(
    principal: Writer, request: Request, body: SyncRequest | None = None
) -> dict[str, Any]:
    """``llmrelay catalog sync`` through the API: upsert the catalog into ``models``."""
    services = services_of(request)
    url = str(body.url) if body is not None and body.url is not None else None
    try:
        raw = await catalog.fetch(url) if url else await asyncio.to_thread(catalog.snapshot_bytes)
        rows = catalog.catalog_rows(raw)
    except catalog.CatalogError as exc:
        raise InvalidRequest(str(exc)[:500], param="url" if url else None) from exc

    async def work(session: AsyncSession) -> dict[str, Any]:
        await catalog.upsert_catalog(await session.connection(), rows)
        result = {"synced": len(rows), "source": url or "bundled snapshot"}
        audit.record(session, principal, "sync", "models", None, None, result)
        return result

    # Thousands of upserts: a bulk job, not a request-path query.
    result = await db.write(
        services, work, timeout=max(SYNC_TIMEOUT, services.settings.database_timeout)
    )
    await _reload_prices(services)
    return result


@router.post("", status_code=201, response_model=ModelOut)
async def create_model(body: ModelCreate, principal: Writer, request: Request) -> ModelOut:
    """Add a model the catalog does not have (a fine-tune, a self-hosted model)."""
    services = services_of(request)
    row = Model(
        id=new_id(),
        model_name=body.model_name,
        litellm_provider=body.litellm_provider,
        mode=body.mode,
        input_cost_per_token=body.input_cost_per_token,
        output_cost_per_token=body.output_cost_per_token,
        cache_read_input_token_cost=body.cache_read_input_token_cost,
        cache_creation_input_token_cost=body.cache_creation_input_token_cost,
        price_source="admin",
        updated_at=utcnow(),
    )

    async def work(session: AsyncSession) -> ModelOut:
        session.add(row)
        await session.flush()
        shown = _out(row)
        audit.record(
            session,
            principal,
            "create",
            "model",
            row.model_name,
            None,
            shown.model_dump(mode="json"),
        )
        return shown

    shown = await db.write(services, work)
    await _reload_prices(services)
    return shown


@router.get("/{name:path}", response_model=ModelOut)
async def get_model(name: ModelName, principal: Reader, request: Request) -> ModelOut:
    async def work(session: AsyncSession) -> ModelOut:
        return _out(await _row(session, name))

    return await db.read(services_of(request), work)


@router.patch("/{name:path}", response_model=ModelOut)
async def set_prices(
    name: ModelName, body: Prices, principal: Writer, request: Request
) -> ModelOut:
    """Override a model's prices (kept across catalog syncs)."""
    services = services_of(request)
    given = body.model_dump(exclude_unset=True)
    if not given:
        raise InvalidRequest("name at least one price to set", param="input_cost_per_token")

    async def work(session: AsyncSession) -> ModelOut:
        row = await _row(session, name)
        before = _out(row).model_dump(mode="json")
        for column, value in given.items():
            setattr(row, column, value)
        row.price_source = "admin"
        row.updated_at = utcnow()
        await session.flush()
        after = _out(row)
        audit.record(
            session, principal, "set_prices", "model", name, before, after.model_dump(mode="json")
        )
        return after

    shown = await db.write(services, work)
    await _reload_prices(services)
    return shown


async def _row(session: AsyncSession, name: str) -> Model:
    row = await session.scalar(select(Model).where(Model.model_name == name))
    if row is None:
        raise NotFound(f"no model named {name!r} in the catalog", param="name")
    return row
