"""Virtual keys: generation, SHA-256 hashing, and a short-TTL lookup cache.

Only the hash is stored. The hot path hashes the presented key and looks the hash up in
an in-memory cache; the database is asked at most once per key per ``ttl`` seconds, so
a key revoked from another process stops working within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from llmrelay.errors import AuthenticationError
from llmrelay.store.schema import ApiKey, Team, new_id, utcnow

KEY_PREFIX = "sk-relay-"
_MAX_CACHE = 100_000


def generate_key() -> str:
    """A new virtual key: the prefix plus 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """A team as the hot path sees it: limits and budgets shared by all its keys."""

    id: str
    name: str
    rate_limit: int | None = None
    rph_limit: int | None = None
    tpm_limit: int | None = None
    monthly_budget: Decimal | None = None
    daily_budget: Decimal | None = None

    @classmethod
    def from_row(cls, row: Team) -> TeamRecord:
        return cls(
            id=row.id, name=row.name, rate_limit=row.rate_limit, rph_limit=row.rph_limit,
            tpm_limit=row.tpm_limit, monthly_budget=row.monthly_budget,
            daily_budget=row.daily_budget,
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    key_hash: str
    allowed_models: tuple[str, ...] | None
    rate_limit: int | None
    tpm_limit: int | None
    monthly_budget: Decimal | None
    metadata: dict[str, Any] | None
    #: Name of the route config used when a request brings none of its own.
    route_config: str | None = None
    rph_limit: int | None = None
    daily_budget: Decimal | None = None
    #: ``{model pattern: {"rpm": n, "rph": n, "tpm": n}}``.
    model_limits: dict[str, dict[str, int]] | None = None
    team: TeamRecord | None = None

    @classmethod
    def from_row(cls, row: ApiKey, team: Team | None = None) -> KeyRecord:
        return cls(
            id=row.id,
            name=row.name,
            key_hash=row.key_hash,
            allowed_models=tuple(row.allowed_models) if row.allowed_models is not None else None,
            rate_limit=row.rate_limit,
            tpm_limit=row.tpm_limit,
            monthly_budget=row.monthly_budget,
            metadata=row.metadata_,
            route_config=row.route_config,
            rph_limit=row.rph_limit,
            daily_budget=row.daily_budget,
            model_limits=row.model_limits,
            team=TeamRecord.from_row(team) if team is not None else None,
        )


class KeyStore:
    """Authenticates virtual keys against the database through a TTL cache."""

    def __init__(self, sessions: async_sessionmaker[Any], ttl: float) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}

    async def authenticate(self, key: str) -> KeyRecord:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            record = hit[1]
        else:
            record = await self._lookup(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise AuthenticationError("invalid API key")
        return record

    async def _lookup(self, digest: str) -> KeyRecord | None:
        """One database query per key at a time, however many requests wait on it."""
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            async with self._sessions() as session:
                row = await session.scalar(
                    select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.enabled.is_(True))
                )
                team = await session.get(Team, row.team_id) if row and row.team_id else None
            record = KeyRecord.from_row(row, team) if row is not None else None
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + self._ttl, record)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[digest]


async def create_key(
    sessions: async_sessionmaker[Any],
    name: str,
    *,
    models: list[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    budget: Decimal | None = None,
    metadata: dict[str, Any] | None = None,
    route_config: str | None = None,
    rph: int | None = None,
    daily_budget: Decimal | None = None,
    team_id: str | None = None,
    model_limits: dict[str, dict[str, int]] | None = None,
) -> tuple[str, ApiKey]:
    """Create a key; returns the clear key (shown once) and its row."""
    key = generate_key()
    row = ApiKey(
        id=new_id(),
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[: len(KEY_PREFIX) + 4],
        enabled=True,
        allowed_models=models,
        rate_limit=rpm,
        tpm_limit=tpm,
        monthly_budget=budget,
        metadata_=metadata,
        route_config=route_config,
        rph_limit=rph,
        daily_budget=daily_budget,
        team_id=team_id,
        model_limits=model_limits,
        created_at=utcnow(),
    )
    async with sessions() as session, session.begin():
        session.add(row)
    return key, row


async def list_keys(sessions: async_sessionmaker[Any]) -> list[ApiKey]:
    async with sessions() as session:
        return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all())


async def revoke_key(sessions: async_sessionmaker[Any], name: str) -> bool:
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.enabled.is_(True))
            .values(enabled=False, revoked_at=utcnow())
        )
    return bool(getattr(result, "rowcount", 0))
