"""Tables. Same models on SQLite and PostgreSQL; Alembic migrations create them.

Ids are 32-char hex strings made by the gateway (:mod:`llmrelay.store.ids`), not by
the database, so a request row and its response row can be written together in one
batch without a round trip to learn the generated id. The columns of ids that rows
added by SQL may carry (keys, teams, providers, models, aliases, route configs) hold
:data:`ID_LENGTH` characters: a UUID's text form, which seed 000's
``gen_random_uuid()`` writes; the server defaults of migration 0008 let that seed's
``INSERT`` statements leave out what it does not name.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import func

# Re-exported: the admin API, the key store and the CLI import them from here.
from llmrelay.store.ids import new_id as new_id
from llmrelay.store.ids import utcnow as utcnow

#: Characters of an id column rows written by SQL may fill: a UUID's 36 (seed 000).
ID_LENGTH = 36


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: SHA-256 hex of the key; the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the key, to recognise it in listings.
    key_prefix: Mapped[str] = mapped_column(String(24), server_default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: JSON list of model patterns this key may use; null means any model.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rate_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests/minute
    tpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tokens/minute
    monthly_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    #: Name of the route config applied when a request brings none of its own.
    route_config: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The team whose limits and budgets also apply to this key (all its keys together).
    team_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("teams.id", ondelete="SET NULL", name="fk_api_keys_team_id_teams"),
        nullable=True,
        index=True,
    )
    rph_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests/hour
    daily_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    #: Per key+model limits: ``{"gpt-4o*": {"rpm": 10, "tpm": 20000}, ...}``.
    model_limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: A key bound to a provider (seed 002 / seed 004): its unprefixed model names go to
    #: this provider, authenticated with the key's own credential when it has one
    #: (sealed by :class:`~llmrelay.store.credentials.CredentialBox`, never returned).
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    encrypted_provider_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The secret before the last rotation, accepted until ``previous_key_expires_at``
    #: (a grace period so clients can switch without an outage).
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: When the key stops working (UTC; null: never). Enforced by the key store on every
    #: call, cached or not (migration 0010 moved it here from the metadata JSON).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider_type: Mapped[str] = mapped_column(String(50))
    #: Fernet token of a JSON object such as ``{"api_key": "..."}``.
    encrypted_credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: "config" when synced from the YAML file, "db" when created through the CLI/admin.
    source: Mapped[str] = mapped_column(String(20), default="db", server_default="db")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class Model(Base):
    """A catalog entry (LiteLLM/BerriAI catalog fields): what a model costs."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("model_name", name="uq_models_model_name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    model_name: Mapped[str] = mapped_column(String(300))
    litellm_provider: Mapped[str | None] = mapped_column(String(100), nullable=True)
    input_cost_per_token: Mapped[Decimal | None] = mapped_column(Numeric(24, 15), nullable=True)
    output_cost_per_token: Mapped[Decimal | None] = mapped_column(Numeric(24, 15), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(50), nullable=True)
    max_input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Price of a prompt token read from the provider's prompt cache.
    cache_read_input_token_cost: Mapped[Decimal | None] = mapped_column(
        Numeric(24, 15), nullable=True
    )
    #: Price of a prompt token written to the provider's prompt cache.
    cache_creation_input_token_cost: Mapped[Decimal | None] = mapped_column(
        Numeric(24, 15), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    #: ``catalog`` (written by ``catalog sync``) or ``admin`` (prices set through the
    #: admin API: a later sync leaves them alone).
    price_source: Mapped[str] = mapped_column(
        String(20), default="catalog", server_default="catalog"
    )


class ModelAlias(Base):
    """A name clients may use for a target: ``target`` (``provider/model`` or another
    model name), or, as seed 000 writes it, a ``models`` row and a ``providers`` row."""

    __tablename__ = "model_aliases"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    alias: Mapped[str] = mapped_column(String(300), unique=True)
    #: ``provider/model`` the alias points at (null when the two ids below name it).
    target: Mapped[str | None] = mapped_column(String(400), nullable=True)
    target_model_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("models.id", ondelete="CASCADE", name="fk_model_aliases_target_model_id"),
        nullable=True,
    )
    provider_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("providers.id", ondelete="CASCADE", name="fk_model_aliases_provider_id"),
        nullable=True,
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class RequestRow(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The x-request-id (the client's, when it sent one).
    request_id: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    route: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(10))
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True, index=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Every upstream attempt: ``[{provider, model, status, error, latency_ms}, ...]``.
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    #: What the call cost, in nano-dollars (1e-9 USD); null when it reached no provider.
    cost_nanos: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The response cache's verdict: HIT, MISS, BYPASS, REFRESH; null when none applied.
    cache: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: A cache hit: what the answer cost when it was made, saved by this call.
    cost_saved_nanos: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ResponseRow(Base):
    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("requests.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    overhead_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)


class RouteConfig(Base):
    """A named routing config (fallback / loadbalance / conditional), as JSON."""

    __tablename__ = "route_configs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_requests_key_created", RequestRow.api_key_id, RequestRow.created_at)


class Team(Base):
    """A group of keys sharing limits and budgets (applied to all its keys together)."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    rate_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests/minute
    rph_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests/hour
    tpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tokens/minute
    monthly_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    daily_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageRecord(Base):
    """What one call that reached a provider used and cost (id = its ``requests`` id).

    Money is integer nano-dollars (``cost_nanos``), exact on every database;
    ``total_cost_usd`` is the same amount as a decimal for SQL reports (seed 000).
    """

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    api_key_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    route: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    #: Usage estimated by the gateway (a stream cut before the provider reported it).
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 9), default=Decimal(0))
    #: Answered from the response cache: ``cost_nanos`` is 0, ``cost_saved_nanos`` what
    #: the upstream call would have cost.
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_saved_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Made by ``llmrelay probe`` (its ``x-llmrelay-probe: 1`` header): billed and limited
    #: like any call, only told apart in reports.
    probe: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


Index("ix_usage_records_key_created", UsageRecord.api_key_id, UsageRecord.created_at)
Index("ix_usage_records_team_created", UsageRecord.team_id, UsageRecord.created_at)


class MonthlyUsageSummary(Base):
    """Per key and calendar month (UTC): kept current by the batch writer."""

    __tablename__ = "monthly_usage_summary"

    api_key_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``total_cost_nanos`` as dollars, recomputed from it on every update (never summed).
    total_cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 9), default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpendCounter(Base):
    """Persisted budget spend per key or team and period, so a restart keeps it.

    ``period`` is ``YYYY-MM`` (monthly budgets) or ``YYYY-MM-DD`` (daily), in UTC.
    """

    __tablename__ = "spend_counters"

    scope: Mapped[str] = mapped_column(String(10), primary_key=True)  # "key" | "team"
    scope_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    spent_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CacheVector(Base):
    """A semantic-cache question, shared by every instance (``cache/shared_vectors.py``).

    ``seq`` orders the rows so each instance reads only what is new since its last poll;
    ``vector`` is float32 little-endian; ``entry_key`` names the answer in the cache
    backend (Redis), which expires on its own: the row goes at ``expires_at``.
    """

    __tablename__ = "cache_vectors"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    context: Mapped[str] = mapped_column(String(64))
    entry_key: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AdminToken(Base):
    """A bearer token of the admin API with a role (``admin`` or ``viewer``).

    Stored as the SHA-256 of the token, like virtual keys; the token is shown once.
    """

    __tablename__ = "admin_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(24))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One change made through the admin plane: who, what, when, before and after.

    ``before`` / ``after`` hold the resource as the API shows it, secrets masked, so the
    audit log can be read by a viewer without exposing a credential.
    """

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    resource: Mapped[str] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class IdempotencyRecord(Base):
    """The answer of an admin ``POST`` / ``PUT`` sent with an ``Idempotency-Key``.

    A retried request with the same key (and the same body fingerprint) gets the stored
    answer instead of creating a second resource; another body under the same key is a
    409. Rows older than a day are deleted by the next write.
    """

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class DailyUsage(Base):
    """Per UTC day, key, team, model, provider and probe flag: what the calls used and cost.

    Kept current by the batch writer in the transaction of the ``usage_records`` rows it
    adds up (exactly once, like :class:`MonthlyUsageSummary`); ``/admin/usage`` reads
    only this table, never the per-call rows. A missing team, model or provider is
    stored as ``""`` so the five-column primary key is also the upsert's conflict key
    (a null never equals another null in a unique index).
    """

    __tablename__ = "usage_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The calls of ``llmrelay probe`` (``usage_records.probe``), summed apart so reports
    #: can leave them out (migration 0010).
    probe: Mapped[bool] = mapped_column(
        Boolean, primary_key=True, default=False, server_default=false()
    )
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_usage_daily_key_day", DailyUsage.api_key_id, DailyUsage.day)


class ProbeResult(Base):
    """One model's outcome in one ``llmrelay probe`` run (docs/probe.md).

    One row per model per run, the tiers tried in ``tiers`` (JSON: name, ok, reason,
    status, ms): history reads success rates and latency percentiles per model from
    here, and ``/health/ready`` the last run per provider. No key, URL or answer text is
    stored: a reason and a status are all a failure needs.
    """

    __tablename__ = "probe_results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    provider: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(300))
    ok: Mapped[bool] = mapped_column(Boolean)
    #: The failure's class (``auth``, ``not_found``, ``timeout`` ...); null when ok.
    reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_ms: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


Index("ix_probe_results_model_created", ProbeResult.model, ProbeResult.created_at)
Index("ix_probe_results_provider_created", ProbeResult.provider, ProbeResult.created_at)
