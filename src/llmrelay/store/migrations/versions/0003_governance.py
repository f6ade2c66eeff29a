"""governance: teams, usage, spend, cache prices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:06:15.699040
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monthly_usage_summary",
        sa.Column("api_key_id", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=20, scale=9), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "year", "month"),
    )
    op.create_table(
        "spend_counters",
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("spent_nanos", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "period"),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("rph_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.Integer(), nullable=True),
        sa.Column("monthly_budget", sa.Numeric(precision=20, scale=6), nullable=True),
        sa.Column("daily_budget", sa.Numeric(precision=20, scale=6), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=True),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("upstream_model", sa.String(length=300), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=20, scale=9), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_records_key_created", ["api_key_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_usage_records_team_created", ["team_id", "created_at"], unique=False
        )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("rph_limit", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("daily_budget", sa.Numeric(precision=20, scale=6), nullable=True)
        )
        batch_op.add_column(sa.Column("model_limits", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_api_keys_team_id_teams", "teams", ["team_id"], ["id"], ondelete="SET NULL"
        )

    # model_name becomes unique: keep one row per name (catalog syncs upsert by name).
    op.execute(
        "DELETE FROM models WHERE id NOT IN (SELECT MIN(id) FROM models GROUP BY model_name)"
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "cache_read_input_token_cost", sa.Numeric(precision=24, scale=15), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "cache_creation_input_token_cost", sa.Numeric(precision=24, scale=15), nullable=True
            )
        )
        batch_op.drop_index(batch_op.f("ix_models_model_name"))
        batch_op.create_unique_constraint("uq_models_model_name", ["model_name"])

    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_nanos", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("cost_nanos")

    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_constraint("uq_models_model_name", type_="unique")
        batch_op.create_index(batch_op.f("ix_models_model_name"), ["model_name"], unique=False)
        batch_op.drop_column("cache_creation_input_token_cost")
        batch_op.drop_column("cache_read_input_token_cost")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_keys_team_id_teams", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_team_id"))
        batch_op.drop_column("model_limits")
        batch_op.drop_column("daily_budget")
        batch_op.drop_column("rph_limit")
        batch_op.drop_column("team_id")

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_team_created")
        batch_op.drop_index("ix_usage_records_key_created")

    op.drop_table("usage_records")
    op.drop_table("teams")
    op.drop_table("spend_counters")
    op.drop_table("monthly_usage_summary")
