"""``GET /admin/audit``: the audit log, newest first, filterable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import db
from llmrelay.admin.deps import Reader, services_of
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.store.schema import AuditEntry

router = APIRouter(prefix="/admin/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: str
    created_at: Timestamp
    actor: str
    action: str
    resource: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@router.get("", response_model=Page[AuditOut])
async def list_audit(
    principal: Reader,
    request: Request,
    resource: Annotated[str | None, Query(max_length=50)] = None,
    resource_id: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AuditOut]:
    query = select(AuditEntry)
    if resource is not None:
        query = query.where(AuditEntry.resource == resource)
    if resource_id is not None:
        query = query.where(AuditEntry.resource_id == resource_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)

    async def work(session: AsyncSession) -> Page[AuditOut]:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(
            query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
        data = [
            AuditOut(
                id=r.id,
                created_at=r.created_at,
                actor=r.actor,
                action=r.action,
                resource=r.resource,
                resource_id=r.resource_id,
                before=r.before,
                after=r.after,
            )
            for r in rows
        ]
        return Page(data=data, total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)
