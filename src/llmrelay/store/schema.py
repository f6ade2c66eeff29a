"""The ORM classes of the admin plane and the CLI, mapped onto the Core tables of
:mod:`llmrelay.store.tables` (where the columns, their types and defaults are defined).

Only what uses ORM sessions imports this module (the admin API, ``llmrelay keys`` and the
other commands, tests): the start and the request path use the tables with SQLAlchemy
Core, so a gateway that never serves an admin call never imports ``sqlalchemy.orm``
(tests/unit/test_import_budget.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, column_property

from llmrelay.store import tables

# Re-exported: the admin API, the key store and the CLI import them from here.
from llmrelay.store.ids import new_id as new_id
from llmrelay.store.ids import utcnow as utcnow
from llmrelay.store.tables import ID_LENGTH as ID_LENGTH


class Base(DeclarativeBase):
    metadata = tables.metadata


class ApiKey(Base):
    __table__ = tables.api_keys

    id: Mapped[str]
    name: Mapped[str]
    key_hash: Mapped[str]
    key_prefix: Mapped[str]
    enabled: Mapped[bool]
    allowed_models: Mapped[list[str] | None]
    rate_limit: Mapped[int | None]
    tpm_limit: Mapped[int | None]
    monthly_budget: Mapped[Decimal | None]
    metadata_: Mapped[dict[str, Any] | None] = column_property(tables.api_keys.c.metadata)
    route_config: Mapped[str | None]
    team_id: Mapped[str | None]
    rph_limit: Mapped[int | None]
    daily_budget: Mapped[Decimal | None]
    model_limits: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    provider: Mapped[str | None]
    encrypted_provider_key: Mapped[str | None]
    previous_key_hash: Mapped[str | None]
    previous_key_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class Provider(Base):
    __table__ = tables.providers

    id: Mapped[str]
    name: Mapped[str]
    display_name: Mapped[str | None]
    provider_type: Mapped[str]
    encrypted_credentials: Mapped[str | None]
    config: Mapped[dict[str, Any] | None]
    enabled: Mapped[bool]
    source: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Model(Base):
    """A catalog entry (LiteLLM/BerriAI catalog fields): what a model costs."""

    __table__ = tables.models

    id: Mapped[str]
    model_name: Mapped[str]
    litellm_provider: Mapped[str | None]
    input_cost_per_token: Mapped[Decimal | None]
    output_cost_per_token: Mapped[Decimal | None]
    mode: Mapped[str | None]
    max_input_tokens: Mapped[int | None]
    max_output_tokens: Mapped[int | None]
    cache_read_input_token_cost: Mapped[Decimal | None]
    cache_creation_input_token_cost: Mapped[Decimal | None]
    updated_at: Mapped[datetime]
    price_source: Mapped[str]


class ModelAlias(Base):
    """A name clients may use for a target: ``target`` (``provider/model`` or another
    model name), or, as seed 000 writes it, a ``models`` row and a ``providers`` row."""

    __table__ = tables.model_aliases

    id: Mapped[str]
    alias: Mapped[str]
    target: Mapped[str | None]
    target_model_id: Mapped[str | None]
    provider_id: Mapped[str | None]
    enabled: Mapped[bool]
    created_at: Mapped[datetime]


class RequestRow(Base):
    __table__ = tables.requests

    id: Mapped[str]
    request_id: Mapped[str]
    created_at: Mapped[datetime]
    route: Mapped[str]
    method: Mapped[str]
    model: Mapped[str | None]
    provider: Mapped[str | None]
    upstream_model: Mapped[str | None]
    api_key_id: Mapped[str | None]
    stream: Mapped[bool]
    status_code: Mapped[int]
    client_ip: Mapped[str | None]
    user_agent: Mapped[str | None]
    body: Mapped[str | None]
    attempts: Mapped[list[dict[str, Any]] | None]
    cost_nanos: Mapped[int | None]
    cache: Mapped[str | None]
    cost_saved_nanos: Mapped[int | None]


class ResponseRow(Base):
    __table__ = tables.responses

    id: Mapped[str]
    request_id: Mapped[str]
    created_at: Mapped[datetime]
    status_code: Mapped[int]
    latency_ms: Mapped[float]
    overhead_ms: Mapped[float]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    total_tokens: Mapped[int]
    cached_tokens: Mapped[int]
    finish_reason: Mapped[str | None]
    error_type: Mapped[str | None]
    error_message: Mapped[str | None]
    body: Mapped[str | None]
    bytes_out: Mapped[int]


class RouteConfig(Base):
    """A named routing config (fallback / loadbalance / conditional), as JSON."""

    __table__ = tables.route_configs

    id: Mapped[str]
    name: Mapped[str]
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Team(Base):
    """A group of keys sharing limits and budgets (applied to all its keys together)."""

    __table__ = tables.teams

    id: Mapped[str]
    name: Mapped[str]
    rate_limit: Mapped[int | None]
    rph_limit: Mapped[int | None]
    tpm_limit: Mapped[int | None]
    monthly_budget: Mapped[Decimal | None]
    daily_budget: Mapped[Decimal | None]
    metadata_: Mapped[dict[str, Any] | None] = column_property(tables.teams.c.metadata)
    created_at: Mapped[datetime]


class UsageRecord(Base):
    """What one call that reached a provider used and cost (id = its ``requests`` id).

    Money is integer nano-dollars (``cost_nanos``), exact on every database;
    ``total_cost_usd`` is the same amount as a decimal for SQL reports (seed 000).
    """

    __table__ = tables.usage_records

    id: Mapped[str]
    created_at: Mapped[datetime]
    api_key_id: Mapped[str | None]
    team_id: Mapped[str | None]
    route: Mapped[str]
    model: Mapped[str | None]
    provider: Mapped[str | None]
    upstream_model: Mapped[str | None]
    stream: Mapped[bool]
    status_code: Mapped[int]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    total_tokens: Mapped[int]
    cached_tokens: Mapped[int]
    cache_write_tokens: Mapped[int]
    usage_estimated: Mapped[bool]
    cost_nanos: Mapped[int]
    total_cost_usd: Mapped[Decimal]
    cache_hit: Mapped[bool]
    cost_saved_nanos: Mapped[int]
    probe: Mapped[bool]


class MonthlyUsageSummary(Base):
    """Per key and calendar month (UTC): kept current by the batch writer."""

    __table__ = tables.monthly_usage_summary

    api_key_id: Mapped[str]
    year: Mapped[int]
    month: Mapped[int]
    team_id: Mapped[str | None]
    total_requests: Mapped[int]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    total_tokens: Mapped[int]
    total_cost_nanos: Mapped[int]
    total_cost_usd: Mapped[Decimal]
    updated_at: Mapped[datetime]


class SpendCounter(Base):
    """Persisted budget spend per key or team and period, so a restart keeps it.

    ``period`` is ``YYYY-MM`` (monthly budgets) or ``YYYY-MM-DD`` (daily), in UTC.
    """

    __table__ = tables.spend_counters

    scope: Mapped[str]
    scope_id: Mapped[str]
    period: Mapped[str]
    spent_nanos: Mapped[int]
    updated_at: Mapped[datetime]


class CacheVector(Base):
    """A semantic-cache question, shared by every instance (``cache/shared_vectors.py``).

    ``seq`` orders the rows so each instance reads only what is new since its last poll;
    ``vector`` is float32 little-endian; ``entry_key`` names the answer in the cache
    backend (Redis), which expires on its own: the row goes at ``expires_at``.
    """

    __table__ = tables.cache_vectors

    seq: Mapped[int]
    context: Mapped[str]
    entry_key: Mapped[str]
    vector: Mapped[bytes]
    expires_at: Mapped[datetime]


class AdminToken(Base):
    """A bearer token of the admin API with a role (``admin`` or ``viewer``).

    Stored as the SHA-256 of the token, like virtual keys; the token is shown once.
    """

    __table__ = tables.admin_tokens

    id: Mapped[str]
    name: Mapped[str]
    token_hash: Mapped[str]
    token_prefix: Mapped[str]
    role: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One change made through the admin plane: who, what, when, before and after.

    ``before`` / ``after`` hold the resource as the API shows it, secrets masked, so the
    audit log can be read by a viewer without exposing a credential.
    """

    __table__ = tables.audit_log

    id: Mapped[str]
    created_at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    resource: Mapped[str]
    resource_id: Mapped[str | None]
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class IdempotencyRecord(Base):
    """The answer of an admin ``POST`` / ``PUT`` sent with an ``Idempotency-Key``.

    A retried request with the same key (and the same body fingerprint) gets the stored
    answer instead of creating a second resource; another body under the same key is a
    409. Rows older than a day are deleted by the next write.
    """

    __table__ = tables.idempotency_keys

    key: Mapped[str]
    actor: Mapped[str]
    fingerprint: Mapped[str]
    status_code: Mapped[int]
    body: Mapped[str]
    created_at: Mapped[datetime]


class DailyUsage(Base):
    """Per UTC day, key, team, model, provider and probe flag: what the calls used and cost.

    Kept current by the batch writer in the transaction of the ``usage_records`` rows it
    adds up (exactly once, like :class:`MonthlyUsageSummary`); ``/admin/usage`` reads
    only this table, never the per-call rows. A missing team, model or provider is
    stored as ``""`` so the five-column primary key is also the upsert's conflict key
    (a null never equals another null in a unique index).
    """

    __table__ = tables.usage_daily

    day: Mapped[date]
    api_key_id: Mapped[str]
    team_id: Mapped[str]
    model: Mapped[str]
    provider: Mapped[str]
    probe: Mapped[bool]
    requests: Mapped[int]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    cost_nanos: Mapped[int]
    cache_hits: Mapped[int]
    errors: Mapped[int]
    updated_at: Mapped[datetime]


class ProbeResult(Base):
    """One model's outcome in one ``llmrelay probe`` run (docs/probe.md).

    One row per model per run, the tiers tried in ``tiers`` (JSON: name, ok, reason,
    status, ms): history reads success rates and latency percentiles per model from
    here, and ``/health/ready`` the last run per provider. No key, URL or answer text is
    stored: a reason and a status are all a failure needs.
    """

    __table__ = tables.probe_results

    id: Mapped[str]
    run_id: Mapped[str]
    created_at: Mapped[datetime]
    provider: Mapped[str]
    model: Mapped[str]
    ok: Mapped[bool]
    reason: Mapped[str | None]
    status_code: Mapped[int | None]
    ttft_ms: Mapped[float | None]
    total_ms: Mapped[float]
    tokens: Mapped[int]
    cost_nanos: Mapped[int]
    tiers: Mapped[list[dict[str, Any]] | None]
