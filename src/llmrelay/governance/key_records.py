"""What the hot path knows of a virtual key and its team, without the database.

The records the key store (:mod:`llmrelay.governance.keys`) caches and every call
carries (``context.py``, the governor, bound providers); a module of its own so the
request path's types import no SQLAlchemy (``import llmrelay.app``, issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


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
    def from_row(cls, row: Any) -> TeamRecord:
        """From a ``teams`` row (Core) or a ``Team`` (ORM): the same attribute names."""
        return cls(
            id=row.id,
            name=row.name,
            rate_limit=row.rate_limit,
            rph_limit=row.rph_limit,
            tpm_limit=row.tpm_limit,
            monthly_budget=row.monthly_budget,
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
    #: The provider a bound key's unprefixed model names go to (seed 002).
    provider: str | None = None
    #: The key's own provider credential, still sealed (opened once per binding by
    #: :mod:`llmrelay.routing.bound`); kept out of ``repr`` so no log line can carry it.
    sealed_provider_key: str | None = field(default=None, repr=False)
    #: When the key stops working, as a Unix time (``None``: never). Checked on every
    #: call, cached record or not, so a key expires on time, not a cache TTL later.
    expires_at: float | None = None

    @classmethod
    def from_row(cls, row: Any, team: Any = None) -> KeyRecord:
        """From an ``api_keys`` row (``metadata`` labelled ``metadata_``, as the key store
        selects it) or an ``ApiKey`` (ORM)."""
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
            provider=row.provider,
            sealed_provider_key=row.encrypted_provider_key,
            expires_at=None if row.expires_at is None else aware(row.expires_at).timestamp(),
        )


def aware(at: datetime) -> datetime:
    """``at`` with a time zone (SQLite gives naive datetimes back; they are UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
