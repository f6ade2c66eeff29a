"""admin data: daily usage rollup, admin price overrides, seed 000 compatibility

Revision ID: 0008_admin_data
Revises: 0007_admin
Create Date: 2026-12-03 07:10:00.000000

- ``usage_daily``: per day, key, team, model and provider, written by the log writer
  with the usage rows it adds up (``/admin/usage`` reads only this table).
- ``models.price_source``: ``admin`` prices survive ``catalog sync``.
- Seed 000 (``docs``' SQL setup script) runs unchanged on PostgreSQL: the ids it makes
  with ``gen_random_uuid()`` are 36 characters (id and id-holding columns widened
  from 32), the columns it leaves out get server defaults (``providers.source``,
  ``created_at``, ``updated_at``; ``api_keys.key_prefix``, ``created_at``;
  ``models.updated_at``; ``model_aliases.created_at``), and ``model_aliases`` gains the
  ``target_model_id`` / ``provider_id`` references it inserts (``target`` nullable).

Widening and server defaults are applied on PostgreSQL only: SQLite neither enforces a
``VARCHAR`` length nor lets a column's default change without rebuilding the table (at
every fresh start of every test database), and the seed's SQL (``gen_random_uuid()``,
``sha256()``) is PostgreSQL's. ``model_aliases`` is rebuilt on SQLite too (batch mode):
its ``target`` must become nullable there as well.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_admin_data"
down_revision = "0007_admin"
branch_labels = None
depends_on = None

#: (table, column, nullable) of every id-holding column widened to 36 characters.
_WIDENED = (
    ("teams", "id", False),
    ("api_keys", "id", False),
    ("api_keys", "team_id", True),
    ("providers", "id", False),
    ("models", "id", False),
    ("model_aliases", "id", False),
    ("route_configs", "id", False),
    ("requests", "api_key_id", True),
    ("usage_records", "api_key_id", True),
    ("usage_records", "team_id", True),
    ("monthly_usage_summary", "api_key_id", False),
    ("monthly_usage_summary", "team_id", True),
    ("spend_counters", "scope_id", False),
)
#: (table, column, server default) added for seed 000's INSERT statements.
_DEFAULTS = (
    ("providers", "source", sa.text("'db'")),
    ("providers", "created_at", sa.text("now()")),
    ("providers", "updated_at", sa.text("now()")),
    ("api_keys", "key_prefix", sa.text("''")),
    ("api_keys", "created_at", sa.text("now()")),
    ("models", "updated_at", sa.text("now()")),
)


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("api_key_id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cache_hits", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", "api_key_id", "team_id", "model", "provider"),
    )
    op.create_index("ix_usage_daily_key_day", "usage_daily", ["api_key_id", "day"])
    op.add_column(
        "models",
        sa.Column("price_source", sa.String(length=20), nullable=False, server_default="catalog"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table, column, nullable in _WIDENED:
            op.alter_column(
                table,
                column,
                type_=sa.String(length=36),
                existing_type=sa.String(length=32),
                existing_nullable=nullable,
            )
        for table, column, default in _DEFAULTS:
            op.alter_column(table, column, server_default=default)
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.alter_column("target", existing_type=sa.String(length=400), nullable=True)
        batch_op.alter_column(
            "created_at",
            existing_type=sa.DateTime(timezone=True),
            server_default=sa.text("now()" if postgres else "CURRENT_TIMESTAMP"),
        )
        batch_op.add_column(sa.Column("target_model_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("provider_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            "fk_model_aliases_target_model_id",
            "models",
            ["target_model_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_model_aliases_provider_id", "providers", ["provider_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.drop_constraint("fk_model_aliases_provider_id", type_="foreignkey")
        batch_op.drop_constraint("fk_model_aliases_target_model_id", type_="foreignkey")
        batch_op.drop_column("provider_id")
        batch_op.drop_column("target_model_id")
        batch_op.alter_column(
            "created_at", existing_type=sa.DateTime(timezone=True), server_default=None
        )
        batch_op.alter_column("target", existing_type=sa.String(length=400), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        for table, column, _default in _DEFAULTS:
            op.alter_column(table, column, server_default=None)
        for table, column, nullable in _WIDENED:
            op.alter_column(
                table,
                column,
                type_=sa.String(length=32),
                existing_type=sa.String(length=36),
                existing_nullable=nullable,
            )
    op.drop_column("models", "price_source")
    op.drop_index("ix_usage_daily_key_day", table_name="usage_daily")
    op.drop_table("usage_daily")
