"""``/admin/virtual-keys``: the proxy's API keys, created, changed, rotated, deleted.

The virtual key (``vk-…``) is returned by the create call and by a rotation of the
secret, never again: listings show its prefix. A key may be *bound* to a provider with
its own real credential (``real_api_key``, seed 004): the credential is sealed at rest
(:class:`~llmrelay.store.credentials.CredentialBox`) and never returned, audited or
listed; answers say only ``has_real_api_key``. Every change is audited in its own
transaction and forgets the key in this instance's cache, so it applies to the next
request here and within ``key_cache_ttl`` on other instances.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmrelay.admin import audit, db, idempotency
from llmrelay.admin.auth import Principal
from llmrelay.admin.deps import Reader, Writer, services_of
from llmrelay.admin.json_size import encoded
from llmrelay.admin.paging import Limit, Offset, Page
from llmrelay.admin.timestamps import Timestamp
from llmrelay.errors import InvalidRequest, NotFound
from llmrelay.governance.keys import (
    EXPIRES_META,
    VIRTUAL_PREFIX,
    as_utc,
    generate_key,
    hash_key,
    is_expired,
)
from llmrelay.store.bounds import JSON_LIMIT, clean_json
from llmrelay.store.schema import ApiKey, Team, new_id, utcnow

if TYPE_CHECKING:
    from llmrelay.services import Services

router = APIRouter(prefix="/admin/virtual-keys", tags=["virtual keys"])

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Ref = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Secret = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+$")]
Count = Annotated[int, Field(ge=1, le=2_000_000_000)]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("100000000000000"), decimal_places=6)]
ModelPattern = Annotated[str, Field(min_length=1, max_length=300)]
Models = Annotated[list[ModelPattern], Field(max_length=500)]
#: Money in answers: a JSON number (seed 004 shows ``"budget_limit_usd": 500``), 500
#: rather than "500.000000"; what is stored and counted stays an exact decimal.
MoneyOut = Annotated[
    Decimal | None,
    PlainSerializer(
        lambda d: None if d is None else (int(d) if d == d.to_integral_value() else float(d)),
        return_type=int | float | None,
        when_used="json",
    ),
]
Status = Literal["active", "disabled"]
#: What a listing may filter on: ``expired`` keys are enabled ones whose ``expires_at``
#: has passed, and ``active`` leaves them out.
ListedStatus = Literal["active", "disabled", "expired"]
#: Longest grace period of an old secret after a rotation (30 days).
MAX_GRACE = 30 * 24 * 3600


class KeyFields(BaseModel):
    """What a key's owner may set, on create and (all optional) on update."""

    model_config = ConfigDict(extra="forbid")
    rate_limit: Count | None = Field(None, description="requests per minute")
    rph_limit: Count | None = Field(None, description="requests per hour")
    tpm_limit: Count | None = Field(None, description="tokens per minute")
    budget_limit_usd: Money | None = Field(None, description="monthly budget in USD")
    daily_budget_usd: Money | None = None
    models: Models | None = Field(None, description="model patterns allowed; null: any")
    team: Ref | None = Field(None, description="team id or name")
    route_config: Ref | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = Field(
        None, description="when the key stops working (ISO 8601; no zone: UTC); null: never"
    )


class KeyCreate(KeyFields):
    name: Name
    provider: Ref | None = Field(None, description="provider of unprefixed model names")
    real_api_key: Secret | None = Field(None, description="the key's own credential")


class KeyUpdate(KeyFields):
    name: Name | None = None
    status: Status | None = None
    provider: Ref | None = None


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_api_key: Secret | None = Field(None, description="swap the bound real credential")
    grace_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE)] = 0


class KeyOut(BaseModel):
    id: str
    name: str
    key_prefix: str
    status: str
    provider: str | None
    has_real_api_key: bool
    models: list[str] | None
    rate_limit: int | None
    rph_limit: int | None
    tpm_limit: int | None
    budget_limit_usd: MoneyOut
    daily_budget_usd: MoneyOut
    team_id: str | None
    route_config: str | None
    metadata: dict[str, Any] | None
    expires_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp | None
    previous_key_expires_at: Timestamp | None


class KeyCreated(KeyOut):
    virtual_key: str = Field(description="the key clients send: shown only in this answer")


def status_of(row: ApiKey) -> str:
    if not row.enabled:
        return "disabled"
    return "expired" if is_expired(row) else "active"


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        status=status_of(row),
        provider=row.provider,
        has_real_api_key=row.encrypted_provider_key is not None,
        models=row.allowed_models,
        rate_limit=row.rate_limit,
        rph_limit=row.rph_limit,
        tpm_limit=row.tpm_limit,
        budget_limit_usd=row.monthly_budget,
        daily_budget_usd=row.daily_budget,
        team_id=row.team_id,
        route_config=row.route_config,
        metadata=row.metadata_ or None,
        expires_at=None if row.expires_at is None else as_utc(row.expires_at),
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_key_expires_at=row.previous_key_expires_at,
    )


def _dump(row: ApiKey) -> dict[str, Any]:
    return key_out(row).model_dump(mode="json")


def check_provider(services: Services, name: str | None) -> None:
    if name is not None and services.registry.get(name) is None:
        known = ", ".join(sorted(p.name for p in services.registry)) or "none"
        raise InvalidRequest(
            f"provider: no provider named {name!r} is configured (configured: {known})"[:500],
            param="provider",
        )


async def team_id_of(session: AsyncSession, ref: str | None) -> str | None:
    """The id of the team named or numbered ``ref``; 400 naming ``team`` if none."""
    if ref is None:
        return None
    team = await session.scalar(select(Team).where(or_(Team.id == ref, Team.name == ref)))
    if team is None:
        raise InvalidRequest(f"team: no team {ref!r}", param="team")
    return team.id


def bounded_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """``metadata`` as stored, or a 400: a JSON column holds at most ``JSON_LIMIT`` bytes,
    and metadata cut short would be worse than refused."""
    if metadata is None:
        return None
    if len(encoded(metadata, "metadata")) > JSON_LIMIT:
        raise InvalidRequest(f"metadata: at most {JSON_LIMIT} bytes of JSON", param="metadata")
    cleaned: dict[str, Any] = clean_json(metadata)
    return cleaned


def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    if metadata is not None and EXPIRES_META in metadata:
        raise InvalidRequest(
            f"metadata: {EXPIRES_META!r} is reserved (use expires_at)", param="metadata"
        )
    return bounded_metadata(metadata) or None


def _seal(services: Services, secret: str) -> str:
    return services.credentials.seal({"api_key": secret})


def _set_secret(row: ApiKey, secret: str) -> None:
    row.key_hash = hash_key(secret)
    row.key_prefix = secret[: len(VIRTUAL_PREFIX) + 4]


async def _get(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no virtual key with id {key_id!r}", param="id")
    return row


KeyId = Annotated[str, Path(max_length=64)]
IdemHeader = Annotated[str | None, Header(alias="idempotency-key")]


async def _idempotent(
    services: Services,
    principal: Principal,
    header: str | None,
    print_: str,
    status: int,
    work: Any,
) -> dict[str, Any]:
    """Run ``work(session) -> answer`` once per ``Idempotency-Key`` (see the module)."""
    key = idempotency.header_key(header)

    async def go(session: AsyncSession) -> dict[str, Any]:
        if key is not None:
            stored = await idempotency.replay(session, services.credentials, principal, key, print_)
            if stored is not None:
                return stored
        answer: dict[str, Any] = await work(session)
        if key is not None:
            idempotency.remember(
                session, services.credentials, principal, key, print_, status, answer
            )
        return answer

    return await db.write(services, go)


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(
    body: KeyCreate, principal: Writer, request: Request, idem: IdemHeader = None
) -> dict[str, Any]:
    services = services_of(request)
    check_provider(services, body.provider)
    if body.real_api_key is not None and body.provider is None:
        raise InvalidRequest("provider: a real_api_key needs its provider", param="provider")
    print_ = idempotency.fingerprint("POST", request.url.path, body.model_dump(mode="json"))

    async def work(session: AsyncSession) -> dict[str, Any]:
        secret = generate_key(VIRTUAL_PREFIX)
        now = utcnow()
        row = ApiKey(
            id=new_id(),
            name=body.name,
            enabled=True,
            allowed_models=body.models,
            rate_limit=body.rate_limit,
            rph_limit=body.rph_limit,
            tpm_limit=body.tpm_limit,
            monthly_budget=body.budget_limit_usd,
            daily_budget=body.daily_budget_usd,
            metadata_=_metadata(body.metadata),
            expires_at=None if body.expires_at is None else as_utc(body.expires_at),
            route_config=body.route_config,
            team_id=await team_id_of(session, body.team),
            provider=body.provider,
            encrypted_provider_key=(
                None if body.real_api_key is None else _seal(services, body.real_api_key)
            ),
            created_at=now,
            updated_at=now,
        )
        _set_secret(row, secret)
        session.add(row)
        await session.flush()
        audit.record(session, principal, "create", "virtual_key", row.id, None, _dump(row))
        services.keys.forget(row.id, row.key_hash)
        return {**_dump(row), "virtual_key": secret}

    return await _idempotent(services, principal, idem, print_, 201, work)


@router.get("", response_model=Page[KeyOut])
async def list_keys(
    principal: Reader,
    request: Request,
    team: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[ListedStatus | None, Query()] = None,
    provider: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[KeyOut]:
    query = select(ApiKey)
    if provider is not None:
        query = query.where(ApiKey.provider == provider)
    now = utcnow()
    if status == "disabled":
        query = query.where(ApiKey.enabled.is_(False))
    elif status == "expired":
        query = query.where(ApiKey.enabled.is_(True), ApiKey.expires_at <= now)
    elif status == "active":
        query = query.where(
            ApiKey.enabled.is_(True), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
        )

    async def work(session: AsyncSession) -> Page[KeyOut]:
        q = query
        if team is not None:
            found = await session.scalar(
                select(Team.id).where(or_(Team.id == team, Team.name == team))
            )
            q = q.where(ApiKey.team_id == (found or ""))
        total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = await session.scalars(
            q.order_by(ApiKey.created_at, ApiKey.id).limit(limit).offset(offset)
        )
        return Page(data=[key_out(r) for r in rows], total=total, limit=limit, offset=offset)

    return await db.read(services_of(request), work)


@router.get("/{key_id}", response_model=KeyOut)
async def get_key(key_id: KeyId, principal: Reader, request: Request) -> KeyOut:
    async def work(session: AsyncSession) -> KeyOut:
        return key_out(await _get(session, key_id))

    return await db.read(services_of(request), work)


@router.patch("/{key_id}", response_model=KeyOut)
async def update_key(key_id: KeyId, body: KeyUpdate, principal: Writer, request: Request) -> KeyOut:
    """Change what is sent; a field sent as ``null`` is cleared (no limit, any model)."""
    services = services_of(request)
    sent = body.model_fields_set
    if "provider" in sent:
        check_provider(services, body.provider)
    for required in ("name", "status"):
        if required in sent and getattr(body, required) is None:
            raise InvalidRequest(f"{required}: may not be null", param=required)

    async def work(session: AsyncSession) -> KeyOut:
        row = await _get(session, key_id)
        before = _dump(row)
        columns = {
            "name": "name",
            "rate_limit": "rate_limit",
            "rph_limit": "rph_limit",
            "tpm_limit": "tpm_limit",
            "budget_limit_usd": "monthly_budget",
            "daily_budget_usd": "daily_budget",
            "models": "allowed_models",
            "route_config": "route_config",
            "provider": "provider",
        }
        for field, column in columns.items():
            if field in sent:
                setattr(row, column, getattr(body, field))
        if "status" in sent:
            row.enabled = body.status == "active"
            row.revoked_at = None if row.enabled else utcnow()
        if "team" in sent:
            row.team_id = await team_id_of(session, body.team)
        if "metadata" in sent:
            row.metadata_ = _metadata(body.metadata)
        if "expires_at" in sent:
            row.expires_at = None if body.expires_at is None else as_utc(body.expires_at)
        if row.provider is None and row.encrypted_provider_key is not None:
            raise InvalidRequest(
                "provider: a key with a real_api_key must keep its provider", param="provider"
            )
        row.updated_at = utcnow()
        await session.flush()
        audit.record(session, principal, "update", "virtual_key", row.id, before, _dump(row))
        digests.extend(h for h in (row.key_hash, row.previous_key_hash) if h)
        return key_out(row)

    digests: list[str] = []
    out = await db.write(services, work)
    services.keys.forget(key_id, *digests)
    return out


@router.delete("/{key_id}", response_model=KeyOut)
async def delete_key(key_id: KeyId, principal: Writer, request: Request) -> KeyOut:
    """Delete the key: it stops working at once here, within ``key_cache_ttl`` elsewhere."""
    services = services_of(request)

    async def work(session: AsyncSession) -> KeyOut:
        row = await _get(session, key_id)
        out = key_out(row)
        await session.delete(row)
        audit.record(
            session, principal, "delete", "virtual_key", key_id, out.model_dump(mode="json")
        )
        return out

    out = await db.write(services, work)
    services.keys.forget(key_id)
    return out


@router.put("/{key_id}/rotate")
async def rotate_key(
    key_id: KeyId,
    principal: Writer,
    request: Request,
    response: Response,
    body: KeyRotate | None = None,
    idem: IdemHeader = None,
) -> dict[str, Any]:
    """With ``new_api_key``: swap the bound real credential (clients change nothing).
    Without: a new virtual secret, returned once; the old one keeps working for
    ``grace_seconds`` (0: it stops at once)."""
    services = services_of(request)
    body = body or KeyRotate(new_api_key=None)
    print_ = idempotency.fingerprint("PUT", request.url.path, body.model_dump(mode="json"))

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await _get(session, key_id)
        before = _dump(row)
        now = utcnow()
        secret: str | None = None
        if body.new_api_key is not None:
            if row.provider is None:
                raise InvalidRequest(
                    "new_api_key: the key is bound to no provider; set its provider first",
                    param="new_api_key",
                )
            row.encrypted_provider_key = _seal(services, body.new_api_key)
            action = "rotate_real_key"
        else:
            secret = generate_key(VIRTUAL_PREFIX)
            if body.grace_seconds:
                row.previous_key_hash = row.key_hash
                row.previous_key_expires_at = now + timedelta(seconds=body.grace_seconds)
            else:
                row.previous_key_hash = None
                row.previous_key_expires_at = None
            _set_secret(row, secret)
            action = "rotate_secret"
        row.updated_at = now
        await session.flush()
        audit.record(session, principal, action, "virtual_key", row.id, before, _dump(row))
        out = _dump(row)
        services.keys.forget(row.id, row.key_hash)
        if secret is not None:
            out["virtual_key"] = secret
        return out

    out = await _idempotent(services, principal, idem, print_, 200, work)
    services.keys.forget(key_id)
    return out
