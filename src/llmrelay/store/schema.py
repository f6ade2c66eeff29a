"""Tables. Same models on SQLite and PostgreSQL; Alembic migrations create them.

Ids are 32-char hex strings made by the gateway, not by the database, so a request row
and its response row can be written together in one batch without a round trip to
learn the generated id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: SHA-256 hex of the key; the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the key, to recognise it in listings.
    key_prefix: Mapped[str] = mapped_column(String(24))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: JSON list of model patterns this key may use; null means any model.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rate_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests/minute
    tpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tokens/minute
    monthly_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    #: Name of the route config applied when a request brings none of its own.
    route_config: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider_type: Mapped[str] = mapped_column(String(50))
    #: Fernet token of a JSON object such as ``{"api_key": "..."}``.
    encrypted_credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: "config" when synced from the YAML file, "db" when created through the CLI/admin.
    source: Mapped[str] = mapped_column(String(20), default="db")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Model(Base):
    """A catalog entry (LiteLLM/BerriAI catalog fields): what a model costs."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_name: Mapped[str] = mapped_column(String(300), index=True)
    litellm_provider: Mapped[str | None] = mapped_column(String(100), nullable=True)
    input_cost_per_token: Mapped[Decimal | None] = mapped_column(Numeric(24, 15), nullable=True)
    output_cost_per_token: Mapped[Decimal | None] = mapped_column(Numeric(24, 15), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(50), nullable=True)
    max_input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    alias: Mapped[str] = mapped_column(String(300), unique=True)
    #: ``provider/model`` the alias points at.
    target: Mapped[str] = mapped_column(String(400))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    api_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Every upstream attempt: ``[{provider, model, status, error, latency_ms}, ...]``.
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


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

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_requests_key_created", RequestRow.api_key_id, RequestRow.created_at)
