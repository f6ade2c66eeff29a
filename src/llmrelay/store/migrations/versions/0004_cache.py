"""response cache: hits recorded on requests and usage rows; shared semantic vectors

Revision ID: 0004_cache
Revises: 0003
Create Date: 2026-12-02 06:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_cache"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_vectors",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("context", sa.String(length=64), nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_cache_vectors_expires_at", "cache_vectors", ["expires_at"])
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("cost_saved_nanos", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cache_hit", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("cost_saved_nanos", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("cost_saved_nanos")
        batch_op.drop_column("cache_hit")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("cost_saved_nanos")
        batch_op.drop_column("cache")
    op.drop_index("ix_cache_vectors_expires_at", table_name="cache_vectors")
    op.drop_table("cache_vectors")
