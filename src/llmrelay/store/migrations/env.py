"""Alembic environment: runs on the connection llmrelay hands it (see database.migrate)."""

from __future__ import annotations

from alembic import context

from llmrelay.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via llmrelay.store.database.migrate
    raise RuntimeError("run migrations through `llmrelay migrate` or the server start")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
