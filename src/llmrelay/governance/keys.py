"""Virtual keys: generation, SHA-256 hashing, and a short-TTL lookup cache.

Only the hash is stored. The hot path hashes the presented key and looks the hash up in
an in-memory cache; the database is asked at most once per key per ``ttl`` seconds, so
a key revoked from another process stops working within that time. Unknown keys are
remembered briefly, lookups of uncached keys are bounded, and a key seen recently keeps
working for a bounded time while the database is away (:class:`KeyStore`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from llmrelay.errors import AuthenticationError, ServiceUnavailable
from llmrelay.governance.key_records import KeyRecord as KeyRecord
from llmrelay.governance.key_records import TeamRecord as TeamRecord
from llmrelay.governance.key_records import aware as _aware
from llmrelay.store.database import Connect
from llmrelay.store.deadline import within
from llmrelay.store.ids import new_id, utcnow
from llmrelay.store.tables import api_keys, teams

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from llmrelay.config import Settings
    from llmrelay.store.schema import ApiKey

log = logging.getLogger("llmrelay.keys")

KEY_PREFIX = "sk-relay-"
#: Prefix of keys made by the admin API (``POST /admin/virtual-keys``, seed 004).
VIRTUAL_PREFIX = "vk-"
_MAX_CACHE = 100_000
#: Metadata entry that held a key's expiry before migration 0010 gave it a column
#: (``api_keys.expires_at``); still refused in metadata, since a gateway of an older
#: version reading the same database would take it for an expiry.
EXPIRES_META = "llmrelay.expires_at"


def generate_key(prefix: str = KEY_PREFIX) -> str:
    """A new virtual key: the prefix plus 256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


#: After a failed lookup the database counts as down for this long: lookups in the
#: meantime answer at once (stale record or 503) instead of each waiting out a timeout
#: against a hung server. One second keeps recovery prompt and probes rare.
_DOWN_FOR = 1.0
#: Negative entries kept at most (a flood of random keys must not grow memory).
_MAX_NEGATIVE = 50_000


#: Length bounds of a key worth hashing and looking up.
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 256


_KEY_BODY = len(secrets.token_urlsafe(32))
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def well_formed(key: str) -> bool:
    """Whether ``key`` could be a stored key (a free first filter before any lookup).

    Keys with llmrelay's own ``sk-relay-`` prefix must have exactly the shape
    :func:`generate_key` gives. Other keys need not: keys imported from a seed-002
    ``keys.json`` are whatever strings their owners chose (``vk_user1_openai``), so
    only their length and visible ASCII are checked; the negative cache absorbs the rest.
    """
    if key.startswith(KEY_PREFIX):
        body = key[len(KEY_PREFIX) :]
        return len(body) == _KEY_BODY and _URLSAFE.issuperset(body)  # in C, not per character
    return (
        MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS
        and key.isascii()
        and key.isprintable()
        and " " not in key
    )


def plausible(key: str) -> bool:
    """Whether a key of another shape is worth a lookup (``key_any_shape``): 8 to 200
    visible ASCII characters (so no header junk or megabyte strings are hashed)."""
    return 8 <= len(key) <= 200 and all("!" <= c <= "~" for c in key)


@dataclass(frozen=True, slots=True)
class KeyCachePolicy:
    """How long lookups are trusted, and what the database may cost the hot path."""

    #: Seconds a found key is trusted; a revoked key stops working within this time.
    ttl: float = 1.0
    #: Seconds an unknown key is remembered as unknown (no query for it meanwhile).
    negative_ttl: float = 5.0
    #: Seconds a found key keeps working while the database cannot be asked.
    stale_ttl: float = 300.0
    #: Lookups of keys not in the cache that may run at once.
    concurrency: int = 8
    #: Seconds a lookup waits for one of those slots before answering 503.
    wait: float = 0.5
    #: Seconds one lookup may take (connection checkout included).
    timeout: float = 2.0
    #: Look up keys of any shape (``key_any_shape``), not only llmrelay's own.
    any_shape: bool = False

    @classmethod
    def from_settings(cls, s: Settings) -> KeyCachePolicy:
        return cls(
            ttl=s.key_cache_ttl,
            negative_ttl=s.key_negative_cache_ttl,
            stale_ttl=s.key_stale_ttl,
            concurrency=s.key_lookup_concurrency,
            wait=s.key_lookup_wait,
            timeout=s.database_timeout,
            any_shape=s.key_any_shape,
        )


@dataclass(slots=True)
class KeyStoreStats:
    """Counters for readiness and tests: what the cache spared the database."""

    queries: int = 0
    negative_hits: int = 0
    malformed: int = 0
    stale_served: int = 0
    busy_rejected: int = 0
    database_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class _Known:
    record: KeyRecord
    #: Monotonic time until which the record is served without asking the database.
    fresh_until: float
    #: Monotonic time of the last successful lookup (the stale bound counts from it).
    confirmed_at: float


#: A key's columns, ``metadata`` as ``metadata_`` (the ORM class's name for it).
_KEY_COLUMNS = tuple(c.label("metadata_") if c.name == "metadata" else c for c in api_keys.c)
_BY_HASH = select(*_KEY_COLUMNS).where(
    api_keys.c.key_hash == bindparam("digest"), api_keys.c.enabled.is_(True)
)
_BY_PREVIOUS_HASH = select(*_KEY_COLUMNS).where(
    api_keys.c.previous_key_hash == bindparam("digest"), api_keys.c.enabled.is_(True)
)
_TEAM = select(teams).where(teams.c.id == bindparam("id"))


class _DatabaseUnavailable(Exception):
    """The lookup failed or timed out: the database, not the key, is the problem."""


class KeyStore:
    """Authenticates virtual keys against the database through a TTL cache.

    Three defences keep the database off the hot path and the hot path up without it:

    - **Negative cache** (``negative_ttl``): a key found unknown is not asked for again
      for a few seconds, so a client retrying a bad key costs nothing.
    - **Bounded lookups** (``concurrency``, ``wait``): keys not in the cache (which is
      what a flood of random keys is) share a few lookup slots; beyond them a call
      gets a fast 503 instead of queueing on the connection pool. Refreshes of keys
      already known bypass the slots, so valid clients are not queued behind a flood.
    - **Stale while unavailable** (``stale_ttl``, ``timeout``): every lookup has a
      timeout; when the database fails or hangs, a key seen within ``stale_ttl`` keeps
      working and an unknown one gets a fast 503, never a 401 (it may be valid).
    """

    def __init__(self, connect: Connect, policy: KeyCachePolicy | None = None) -> None:
        self._connect = connect
        self.policy = policy or KeyCachePolicy()
        self.stats = KeyStoreStats()
        self._known: dict[str, _Known] = {}
        self._unknown: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._down_until = 0.0

    @property
    def database_down(self) -> bool:
        return self._down_until > time.monotonic()

    def counters(self) -> tuple[bool, dict[str, int]]:
        """Whether the database counts as down, and the stats (for ``/metrics``)."""
        return self.database_down, self.stats.as_dict()

    def forget(self, key_id: str, *digests: str) -> None:
        """Drop every cached lookup of key ``key_id``, and the negative entries of
        ``digests`` (its secrets: a key re-enabled or just made must not stay "unknown"):
        a change made on this instance applies to its next request (other instances see
        it within ``ttl``, or ``negative_ttl`` for a key that was refused)."""
        for digest in [d for d, k in self._known.items() if k.record.id == key_id]:
            del self._known[digest]
        for digest in digests:
            self._unknown.pop(digest, None)

    async def authenticate(self, key: str) -> KeyRecord:
        if not (well_formed(key) or (self.policy.any_shape and plausible(key))):
            self.stats.malformed += 1
            raise AuthenticationError("invalid API key")
        digest = hash_key(key)
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and known.fresh_until > now:
            record: KeyRecord | None = known.record
        elif known is None and self._unknown.get(digest, 0.0) > now:
            self.stats.negative_hits += 1
            record = None
        else:
            record = await self._lookup(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise AuthenticationError("invalid API key")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise AuthenticationError(
                "this API key has expired; ask its administrator for a new one or a later expiry",
                code="key_expired",
            )
        return record

    async def _lookup(self, digest: str) -> KeyRecord | None:
        """One database query per key at a time, however many requests wait on it."""
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            record = await self._lookup_or_stale(digest)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[digest]

    async def _lookup_or_stale(self, digest: str) -> KeyRecord | None:
        known = self._known.get(digest)
        if not self.database_down:
            try:
                return await self._query(digest, known is not None)
            except _DatabaseUnavailable:
                self._down_until = time.monotonic() + _DOWN_FOR
        now = time.monotonic()
        if known is not None and now - known.confirmed_at <= self.policy.stale_ttl:
            self.stats.stale_served += 1
            return known.record
        raise ServiceUnavailable(
            "the gateway cannot check API keys right now (its database is unavailable); "
            "retry shortly",
            code="key_store_unavailable",
            headers={"retry-after": "1"},
        )

    async def _query(self, digest: str, known: bool) -> KeyRecord | None:
        if known:  # a key seen before is never queued behind lookups of unknown keys
            return await self._select(digest)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.policy.wait)
        except TimeoutError:
            self.stats.busy_rejected += 1
            raise ServiceUnavailable(
                "too many API key lookups at once; retry shortly",
                code="key_lookups_saturated",
                headers={"retry-after": "1"},
            ) from None
        try:
            return await self._select(digest)
        finally:
            self._slots.release()

    async def _read(self, digest: str) -> KeyRecord | None:
        async with self._connect() as conn:
            row = (await conn.execute(_BY_HASH, {"digest": digest})).first()
            matched = digest
            if row is None:  # the secret before a rotation, during its grace period
                row = (await conn.execute(_BY_PREVIOUS_HASH, {"digest": digest})).first()
                grace = row.previous_key_expires_at if row is not None else None
                if grace is None or _aware(grace) <= utcnow():
                    return None
            if row is None:
                return None
            team = None
            if row.team_id:
                team = (await conn.execute(_TEAM, {"id": row.team_id})).first()
            record = KeyRecord.from_row(row, team)
            if matched != row.key_hash:
                record = replace(record, key_hash=matched)
            return record

    async def _select(self, digest: str) -> KeyRecord | None:
        self.stats.queries += 1
        try:
            record = await within(self.policy.timeout, self._read(digest))
        except Exception as exc:  # refused, reset, timed out, pool exhausted: all "down"
            self.stats.database_failures += 1
            log.warning("API key lookup failed: %s: %s", type(exc).__name__, exc)
            raise _DatabaseUnavailable() from exc
        now = time.monotonic()
        if record is None:
            self._known.pop(digest, None)  # revoked or deleted: stop serving it at once
            if len(self._unknown) >= _MAX_NEGATIVE:
                self._unknown.clear()
            self._unknown[digest] = now + self.policy.negative_ttl
        else:
            if len(self._known) >= _MAX_CACHE:
                self._known.clear()
            self._known[digest] = _Known(record, now + self.policy.ttl, now)
            self._unknown.pop(digest, None)
        return record


def as_utc(at: datetime) -> datetime:
    """``at`` in UTC, as expiries are stored (SQLite keeps no zone: the column is
    compared as written); a time naming no zone is taken as UTC."""
    return _aware(at).astimezone(UTC)


def is_expired(row: ApiKey, now: datetime | None = None) -> bool:
    """Whether the key's ``expires_at`` has passed."""
    return row.expires_at is not None and _aware(row.expires_at) <= (now or utcnow())


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
    expires_at: datetime | None = None,
) -> tuple[str, ApiKey]:
    """Create a key; returns the clear key (shown once) and its row."""
    from llmrelay.store.schema import ApiKey  # the ORM: commands only, never at start

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
        expires_at=None if expires_at is None else as_utc(expires_at),
        created_at=utcnow(),
    )
    async with sessions() as session, session.begin():
        session.add(row)
    return key, row


async def list_keys(sessions: async_sessionmaker[Any]) -> list[ApiKey]:
    from llmrelay.store.schema import ApiKey

    async with sessions() as session:
        return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all())


async def revoke_key(sessions: async_sessionmaker[Any], name: str) -> bool:
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.enabled.is_(True))
            .values(enabled=False, revoked_at=utcnow())
        )
    return bool(getattr(result, "rowcount", 0))
