"""Who calls the admin API, and what they may do.

Two kinds of bearer token: the gateway's ``master_key`` (role ``admin``, actor
``master``), and admin tokens from the ``admin_tokens`` table, each with a role:
``admin`` may change anything, ``viewer`` may only read. Tokens are stored as their
SHA-256 (like virtual keys) and compared in constant time. With neither a master key
nor any admin token the admin API refuses every call: an open admin plane on a gateway
that was only meant to relay would hand out provider credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from llmrelay.admin.roles import ROLES as ROLES
from llmrelay.admin.roles import Role as Role
from llmrelay.errors import AuthenticationError, PermissionDenied, ServiceUnavailable
from llmrelay.store.deadline import within
from llmrelay.store.schema import AdminToken, new_id, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from llmrelay.services import Services

TOKEN_PREFIX = "llmrelay-admin-"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one admin request."""

    actor: str  #: ``master`` or ``token:<name>``: what the audit log records
    role: Role

    @property
    def may_write(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(
    sessions: async_sessionmaker[Any], name: str, role: Role
) -> tuple[str, AdminToken]:
    """Create an admin token; returns the clear token (shown once) and its row."""
    token = generate_token()
    row = AdminToken(
        id=new_id(),
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[: len(TOKEN_PREFIX) + 4],
        role=role,
        created_at=utcnow(),
    )
    async with sessions() as session, session.begin():
        session.add(row)
    return token, row


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(services: Services, header: str | None) -> Principal:
    """The principal behind an ``Authorization`` header, or the error to answer."""
    token = bearer(header)
    if token is None:
        raise AuthenticationError(
            "the admin API needs 'Authorization: Bearer <master key or admin token>'",
            code="missing_admin_token",
        )
    master = services.settings.master_key
    if master and hmac.compare_digest(token.encode(), master.encode()):
        return Principal("master", "admin")
    digest = hash_token(token)
    try:
        row = await within(services.settings.database_timeout, _token_row(services, digest))
    except TimeoutError as exc:
        raise ServiceUnavailable("the database did not answer in time; retry") from exc
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        raise AuthenticationError("invalid admin token", code="invalid_admin_token")
    role: Role = "admin" if row.role == "admin" else "viewer"
    return Principal(f"token:{row.name}", role)


async def _token_row(services: Services, digest: str) -> AdminToken | None:
    async with services.sessions() as session:
        row: AdminToken | None = await session.scalar(
            select(AdminToken).where(AdminToken.token_hash == digest)
        )
        return row


def require_write(principal: Principal) -> None:
    if not principal.may_write:
        raise PermissionDenied(
            f"{principal.actor} has the viewer role: it may read, not change",
            code="admin_role_required",
        )
