"""Join the two revisions made side by side on 0007_admin.

``0008_admin_data`` (rollups, seed 000 columns) and ``0008_probe`` (probe results)
were written in parallel and touch different tables, so their order does not matter;
this revision makes the history one head again, which start-up's "is the database at
head?" check needs.

Revision ID: 0009_merge
Revises: 0008_admin_data, 0008_probe
"""

from __future__ import annotations

revision = "0009_merge"
down_revision = ("0008_admin_data", "0008_probe")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
