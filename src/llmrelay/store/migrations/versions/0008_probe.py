"""probe results (llmrelay probe's history); usage rows tagged as probes

Revision ID: 0008_probe
Revises: 0007_admin
Create Date: 2026-12-03 07:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_probe"
down_revision = "0007_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probe_results",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_probe_results_run_id", "probe_results", ["run_id"])
    op.create_index("ix_probe_results_model_created", "probe_results", ["model", "created_at"])
    op.create_index(
        "ix_probe_results_provider_created", "probe_results", ["provider", "created_at"]
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("probe", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("probe")
    op.drop_index("ix_probe_results_provider_created", table_name="probe_results")
    op.drop_index("ix_probe_results_model_created", table_name="probe_results")
    op.drop_index("ix_probe_results_run_id", table_name="probe_results")
    op.drop_table("probe_results")
