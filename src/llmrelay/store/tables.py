"""Tables, as SQLAlchemy Core ``Table`` objects. Same on SQLite and PostgreSQL; Alembic
migrations create them (tests/unit/test_schema_ddl.py checks the two agree).

The start and the request path (key lookups, stored providers, aliases, route configs,
the change feed, the log writer and its usage sinks, readiness) use these and SQLAlchemy
Core only. The ORM classes of :mod:`llmrelay.store.schema` are mapped onto the same
tables for the admin plane and the CLI, which import them when they are used: the ORM
and ``sqlalchemy.ext.asyncio`` (whose package imports the ORM) were ~0.2 s of every
start on a quiet machine (issue 14).

Ids are 32-char hex strings made by the gateway (:mod:`llmrelay.store.ids`), not by
the database, so a request row and its response row can be written together in one
batch without a round trip to learn the generated id. The columns of ids that rows
added by SQL may carry (keys, teams, providers, models, aliases, route configs) hold
:data:`ID_LENGTH` characters: a UUID's text form, which seed 000's
``gen_random_uuid()`` writes; the server defaults of migration 0008 let that seed's
``INSERT`` statements leave out what it does not name.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.sql import func

from llmrelay.store.ids import new_id, utcnow

#: Characters of an id column rows written by SQL may fill: a UUID's 36 (seed 000).
ID_LENGTH = 36

metadata = MetaData()


def _when() -> DateTime:
    return DateTime(timezone=True)


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("name", String(200), nullable=False, unique=True),
    #: SHA-256 hex of the key; the key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    #: First characters of the key, to recognise it in listings.
    Column("key_prefix", String(24), nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    #: JSON list of model patterns this key may use; null means any model.
    Column("allowed_models", JSON, nullable=True),
    Column("rate_limit", Integer, nullable=True),  # requests/minute
    Column("tpm_limit", Integer, nullable=True),  # tokens/minute
    Column("monthly_budget", Numeric(20, 6), nullable=True),
    Column("metadata", JSON, nullable=True),
    #: Name of the route config applied when a request brings none of its own.
    Column("route_config", String(200), nullable=True),
    #: The team whose limits and budgets also apply to this key (all its keys together).
    Column(
        "team_id",
        String(ID_LENGTH),
        ForeignKey("teams.id", ondelete="SET NULL", name="fk_api_keys_team_id_teams"),
        nullable=True,
        index=True,
    ),
    Column("rph_limit", Integer, nullable=True),  # requests/hour
    Column("daily_budget", Numeric(20, 6), nullable=True),
    #: Per key+model limits: ``{"gpt-4o*": {"rpm": 10, "tpm": 20000}, ...}``.
    Column("model_limits", JSON, nullable=True),
    Column("created_at", _when(), nullable=False, default=utcnow, server_default=func.now()),
    Column("revoked_at", _when(), nullable=True),
    #: A key bound to a provider (seed 002 / seed 004): its unprefixed model names go to
    #: this provider, authenticated with the key's own credential when it has one
    #: (sealed by :class:`~llmrelay.store.credentials.CredentialBox`, never returned).
    Column("provider", String(200), nullable=True),
    Column("encrypted_provider_key", Text, nullable=True),
    #: The secret before the last rotation, accepted until ``previous_key_expires_at``
    #: (a grace period so clients can switch without an outage).
    Column("previous_key_hash", String(64), nullable=True, index=True),
    Column("previous_key_expires_at", _when(), nullable=True),
    Column("updated_at", _when(), nullable=True),
    #: When the key stops working (UTC; null: never). Enforced by the key store on every
    #: call, cached or not (migration 0010 moved it here from the metadata JSON).
    Column("expires_at", _when(), nullable=True),
)

providers = Table(
    "providers",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("name", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=True),
    Column("provider_type", String(50), nullable=False),
    #: Fernet token of a JSON object such as ``{"api_key": "..."}``.
    Column("encrypted_credentials", Text, nullable=True),
    Column("config", JSON, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    #: "config" when synced from the YAML file, "db" when created through the CLI/admin.
    Column("source", String(20), nullable=False, default="db", server_default="db"),
    Column("created_at", _when(), nullable=False, default=utcnow, server_default=func.now()),
    Column("updated_at", _when(), nullable=False, default=utcnow, server_default=func.now()),
)

#: A catalog entry (LiteLLM/BerriAI catalog fields): what a model costs.
models = Table(
    "models",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("model_name", String(300), nullable=False),
    Column("litellm_provider", String(100), nullable=True),
    Column("input_cost_per_token", Numeric(24, 15), nullable=True),
    Column("output_cost_per_token", Numeric(24, 15), nullable=True),
    Column("mode", String(50), nullable=True),
    Column("max_input_tokens", Integer, nullable=True),
    Column("max_output_tokens", Integer, nullable=True),
    #: Price of a prompt token read from the provider's prompt cache.
    Column("cache_read_input_token_cost", Numeric(24, 15), nullable=True),
    #: Price of a prompt token written to the provider's prompt cache.
    Column("cache_creation_input_token_cost", Numeric(24, 15), nullable=True),
    Column("updated_at", _when(), nullable=False, default=utcnow, server_default=func.now()),
    #: ``catalog`` (written by ``catalog sync``) or ``admin`` (prices set through the
    #: admin API: a later sync leaves them alone).
    Column("price_source", String(20), nullable=False, default="catalog", server_default="catalog"),
    UniqueConstraint("model_name", name="uq_models_model_name"),
)

#: A name clients may use for a target: ``target`` (``provider/model`` or another model
#: name), or, as seed 000 writes it, a ``models`` row and a ``providers`` row.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("alias", String(300), nullable=False, unique=True),
    #: ``provider/model`` the alias points at (null when the two ids below name it).
    Column("target", String(400), nullable=True),
    Column(
        "target_model_id",
        String(ID_LENGTH),
        ForeignKey("models.id", ondelete="CASCADE", name="fk_model_aliases_target_model_id"),
        nullable=True,
    ),
    Column(
        "provider_id",
        String(ID_LENGTH),
        ForeignKey("providers.id", ondelete="CASCADE", name="fk_model_aliases_provider_id"),
        nullable=True,
    ),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", _when(), nullable=False, default=utcnow, server_default=func.now()),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(32), primary_key=True),
    #: The x-request-id (the client's, when it sent one).
    Column("request_id", String(200), nullable=False, index=True),
    Column("created_at", _when(), nullable=False, index=True),
    Column("route", String(100), nullable=False),
    Column("method", String(10), nullable=False),
    Column("model", String(300), nullable=True),
    Column("provider", String(200), nullable=True),
    Column("upstream_model", String(300), nullable=True),
    Column("api_key_id", String(ID_LENGTH), nullable=True, index=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status_code", Integer, nullable=False),
    Column("client_ip", String(64), nullable=True),
    Column("user_agent", String(300), nullable=True),
    Column("body", Text, nullable=True),
    #: Every upstream attempt: ``[{provider, model, status, error, latency_ms}, ...]``.
    Column("attempts", JSON, nullable=True),
    #: What the call cost, in nano-dollars (1e-9 USD); null when it reached no provider.
    Column("cost_nanos", BigInteger, nullable=True),
    #: The response cache's verdict: HIT, MISS, BYPASS, REFRESH; null when none applied.
    Column("cache", String(16), nullable=True),
    #: A cache hit: what the answer cost when it was made, saved by this call.
    Column("cost_saved_nanos", BigInteger, nullable=True),
)

responses = Table(
    "responses",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "request_id",
        String(32),
        ForeignKey("requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", _when(), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("overhead_ms", Float, nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("total_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("finish_reason", String(50), nullable=True),
    Column("error_type", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("body", Text, nullable=True),
    Column("bytes_out", BigInteger, nullable=False, default=0),
)

#: A named routing config (fallback / loadbalance / conditional), as JSON.
route_configs = Table(
    "route_configs",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("name", String(200), nullable=False, unique=True),
    Column("config", JSON, nullable=False),
    Column("created_at", _when(), nullable=False, default=utcnow),
    Column("updated_at", _when(), nullable=False, default=utcnow),
)

Index("ix_requests_key_created", requests.c.api_key_id, requests.c.created_at)

#: A group of keys sharing limits and budgets (applied to all its keys together).
teams = Table(
    "teams",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, default=new_id),
    Column("name", String(200), nullable=False, unique=True),
    Column("rate_limit", Integer, nullable=True),  # requests/minute
    Column("rph_limit", Integer, nullable=True),  # requests/hour
    Column("tpm_limit", Integer, nullable=True),  # tokens/minute
    Column("monthly_budget", Numeric(20, 6), nullable=True),
    Column("daily_budget", Numeric(20, 6), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("created_at", _when(), nullable=False, default=utcnow),
)

#: What one call that reached a provider used and cost (id = its ``requests`` id).
#: Money is integer nano-dollars (``cost_nanos``), exact on every database;
#: ``total_cost_usd`` is the same amount as a decimal for SQL reports (seed 000).
usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", _when(), nullable=False),
    Column("api_key_id", String(ID_LENGTH), nullable=True),
    Column("team_id", String(ID_LENGTH), nullable=True),
    Column("route", String(100), nullable=False),
    Column("model", String(300), nullable=True),
    Column("provider", String(200), nullable=True),
    Column("upstream_model", String(300), nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status_code", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("total_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    #: Usage estimated by the gateway (a stream cut before the provider reported it).
    Column("usage_estimated", Boolean, nullable=False, default=False),
    Column("cost_nanos", BigInteger, nullable=False, default=0),
    Column("total_cost_usd", Numeric(20, 9), nullable=False, default=Decimal(0)),
    #: Answered from the response cache: ``cost_nanos`` is 0, ``cost_saved_nanos`` what
    #: the upstream call would have cost.
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("cost_saved_nanos", BigInteger, nullable=False, default=0),
    #: Made by ``llmrelay probe`` (its ``x-llmrelay-probe: 1`` header): billed and limited
    #: like any call, only told apart in reports.
    Column("probe", Boolean, nullable=False, default=False, server_default=false()),
)

Index("ix_usage_records_key_created", usage_records.c.api_key_id, usage_records.c.created_at)
Index("ix_usage_records_team_created", usage_records.c.team_id, usage_records.c.created_at)

#: Per key and calendar month (UTC): kept current by the batch writer.
monthly_usage_summary = Table(
    "monthly_usage_summary",
    metadata,
    Column("api_key_id", String(ID_LENGTH), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("month", Integer, primary_key=True),
    Column("team_id", String(ID_LENGTH), nullable=True),
    Column("total_requests", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("total_tokens", BigInteger, nullable=False, default=0),
    Column("total_cost_nanos", BigInteger, nullable=False, default=0),
    #: ``total_cost_nanos`` as dollars, recomputed from it on every update (never summed).
    Column("total_cost_usd", Numeric(20, 9), nullable=False, default=Decimal(0)),
    Column("updated_at", _when(), nullable=False, default=utcnow),
)

#: Persisted budget spend per key or team and period, so a restart keeps it.
#: ``period`` is ``YYYY-MM`` (monthly budgets) or ``YYYY-MM-DD`` (daily), in UTC.
spend_counters = Table(
    "spend_counters",
    metadata,
    Column("scope", String(10), primary_key=True),  # "key" | "team"
    Column("scope_id", String(ID_LENGTH), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("spent_nanos", BigInteger, nullable=False, default=0),
    Column("updated_at", _when(), nullable=False, default=utcnow),
)

#: A semantic-cache question, shared by every instance (``cache/shared_vectors.py``).
#: ``seq`` orders the rows so each instance reads only what is new since its last poll;
#: ``vector`` is float32 little-endian; ``entry_key`` names the answer in the cache
#: backend (Redis), which expires on its own: the row goes at ``expires_at``.
cache_vectors = Table(
    "cache_vectors",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("context", String(64), nullable=False),
    Column("entry_key", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("expires_at", _when(), nullable=False, index=True),
)

#: A bearer token of the admin API with a role (``admin`` or ``viewer``).
#: Stored as the SHA-256 of the token, like virtual keys; the token is shown once.
admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(36), primary_key=True, default=new_id),
    Column("name", String(200), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(24), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", _when(), nullable=False, default=utcnow),
    Column("revoked_at", _when(), nullable=True),
)

#: One change made through the admin plane: who, what, when, before and after.
#: ``before`` / ``after`` hold the resource as the API shows it, secrets masked, so the
#: audit log can be read by a viewer without exposing a credential.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(36), primary_key=True, default=new_id),
    Column("created_at", _when(), nullable=False, default=utcnow, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(50), nullable=False),
    Column("resource", String(50), nullable=False),
    Column("resource_id", String(200), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
)

#: The answer of an admin ``POST`` / ``PUT`` sent with an ``Idempotency-Key``.
#: A retried request with the same key (and the same body fingerprint) gets the stored
#: answer instead of creating a second resource; another body under the same key is a
#: 409. Rows older than a day are deleted by the next write.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("actor", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", _when(), nullable=False, default=utcnow, index=True),
)

#: Per UTC day, key, team, model, provider and probe flag: what the calls used and cost.
#: Kept current by the batch writer in the transaction of the ``usage_records`` rows it
#: adds up (exactly once, like ``monthly_usage_summary``); ``/admin/usage`` reads only
#: this table, never the per-call rows. A missing team, model or provider is stored as
#: ``""`` so the five-column primary key is also the upsert's conflict key (a null never
#: equals another null in a unique index).
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("api_key_id", String(ID_LENGTH), primary_key=True),
    Column("team_id", String(ID_LENGTH), primary_key=True),
    Column("model", String(300), primary_key=True),
    Column("provider", String(200), primary_key=True),
    #: The calls of ``llmrelay probe`` (``usage_records.probe``), summed apart so reports
    #: can leave them out (migration 0010).
    Column("probe", Boolean, primary_key=True, default=False, server_default=false()),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nanos", BigInteger, nullable=False, default=0),
    Column("cache_hits", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("updated_at", _when(), nullable=False, default=utcnow),
)

Index("ix_usage_daily_key_day", usage_daily.c.api_key_id, usage_daily.c.day)

#: One model's outcome in one ``llmrelay probe`` run (docs/probe.md).
#: One row per model per run, the tiers tried in ``tiers`` (JSON: name, ok, reason,
#: status, ms): history reads success rates and latency percentiles per model from
#: here, and ``/health/ready`` the last run per provider. No key, URL or answer text is
#: stored: a reason and a status are all a failure needs.
probe_results = Table(
    "probe_results",
    metadata,
    Column("id", String(32), primary_key=True, default=new_id),
    Column("run_id", String(32), nullable=False, index=True),
    Column("created_at", _when(), nullable=False, default=utcnow),
    Column("provider", String(200), nullable=False),
    Column("model", String(300), nullable=False),
    Column("ok", Boolean, nullable=False),
    #: The failure's class (``auth``, ``not_found``, ``timeout`` ...); null when ok.
    Column("reason", String(50), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("ttft_ms", Float, nullable=True),
    Column("total_ms", Float, nullable=False),
    Column("tokens", Integer, nullable=False, default=0),
    Column("cost_nanos", BigInteger, nullable=False, default=0),
    Column("tiers", JSON, nullable=True),
)

Index("ix_probe_results_model_created", probe_results.c.model, probe_results.c.created_at)
Index("ix_probe_results_provider_created", probe_results.c.provider, probe_results.c.created_at)
