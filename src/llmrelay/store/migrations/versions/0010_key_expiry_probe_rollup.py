"""key expiry as a column; probe calls apart in the daily usage rollup

Revision ID: 0010_key_expiry_probe_rollup
Revises: 0009_merge
Create Date: 2026-12-03 12:50:00.000000

- ``api_keys.expires_at`` (timestamp, UTC): a key's expiry, enforced by the key store.
  It rode in the key's ``metadata`` JSON as ``llmrelay.expires_at`` (an ISO 8601
  string) because the schema had no column for it: each such value is moved into the
  column (converted to UTC; a value naming no zone is UTC, as the admin API wrote it)
  and removed from the metadata (a metadata left empty becomes null). A value that is
  not a time was never enforced (the old reader ignored it): it is dropped, so the key
  keeps not expiring. The downgrade moves the column back into the metadata.
- ``usage_daily.probe``: part of the rollup's primary key, so ``/admin/usage`` and
  ``llmrelay usage`` can leave out the calls of ``llmrelay probe`` (``usage_records.
  probe``) without reading a per-call row. The table is rebuilt (SQLite cannot change a
  primary key in place) with every existing row as a non-probe row; then the probe
  calls still in ``usage_records`` are summed into probe rows of their own and taken
  off the non-probe rows that counted them (a non-probe row left with no request is
  deleted). Probe rows whose ``usage_records`` were already deleted stay counted as
  non-probe calls: nothing else says which they were.

- SQLite only: the server defaults 0008 gave PostgreSQL for seed 000's ``INSERT``
  statements (``providers.source`` ``'db'``, ``created_at``, ``updated_at``;
  ``api_keys.key_prefix`` ``''``, ``created_at``; ``models.updated_at``), so the seed's
  SQL runs on SQLite too where only its PostgreSQL functions are swapped for SQLite's
  (``tests/admin/test_seed_000_sqlite.py``). SQLite cannot change a column's default
  with ``ALTER TABLE``, and rebuilding ``providers`` or ``models`` is unsafe inside the
  migration's transaction: with foreign keys on (which cannot be switched off within a
  transaction), dropping the old table deletes its rows and so cascades to the
  ``model_aliases`` rows that reference them. So the defaults are written into the
  stored ``CREATE TABLE`` text, the procedure SQLite documents for changes that leave
  the stored rows as they are ("Making Other Kinds Of Table Schema Changes",
  https://www.sqlite.org/lang_altertable.html: writable_schema, then a new
  schema_version). The downgrade leaves them (they match the ORM's server defaults).

Every other statement is plain SQL or SQLAlchemy Core that SQLite and PostgreSQL both run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_key_expiry_probe_rollup"
down_revision = "0009_merge"
branch_labels = None
depends_on = None

#: Where the expiry lived before this revision (governance/keys.py wrote it there).
EXPIRES_META = "llmrelay.expires_at"
_GROUP = ("day", "api_key_id", "team_id", "model", "provider")
_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "cache_hits", "errors")

_keys = sa.table(
    "api_keys",
    sa.column("id", sa.String()),
    sa.column("metadata", sa.JSON()),
    sa.column("expires_at", sa.DateTime(timezone=True)),
)


#: SQLite: (table, column, default) written into the stored table definitions.
_SQLITE_DEFAULTS = (
    ("providers", "source", "'db'"),
    ("providers", "created_at", "CURRENT_TIMESTAMP"),
    ("providers", "updated_at", "CURRENT_TIMESTAMP"),
    ("api_keys", "key_prefix", "''"),
    ("api_keys", "created_at", "CURRENT_TIMESTAMP"),
    ("models", "updated_at", "CURRENT_TIMESTAMP"),
)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    _expiry_to_column()
    _rollup_with_probe()
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_defaults()


def _sqlite_defaults() -> None:
    bind = op.get_bind()
    schema = {
        name: sql
        for name, sql in bind.execute(
            sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        ).all()
    }
    changed: dict[str, str] = {}
    for table, column, default in _SQLITE_DEFAULTS:
        sql = changed.get(table, schema[table])
        if re.search(rf"\n\t{column} [A-Z]+(?:\(\d+\))? DEFAULT ", sql):
            continue  # up again after a downgrade, which leaves the defaults
        # A column as SQLAlchemy wrote it: "\n\tsource VARCHAR(20) NOT NULL," (no default).
        pattern = rf"(\n\t{column} [A-Z]+(?:\(\d+\))?) NOT NULL"
        sql, found = re.subn(pattern, rf"\1 DEFAULT {default} NOT NULL", sql)
        if found != 1:
            raise RuntimeError(f"0010: {table}.{column} is not as expected in {schema[table]!r}")
        changed[table] = sql
    if not changed:
        return
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    for table, sql in changed.items():
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
            {"sql": sql, "t": table},
        )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def _parse(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    # Stored in UTC: SQLite keeps no zone, and the key store compares with UTC now.
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def _expiry_to_column() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_keys.c.id, _keys.c.metadata).where(_keys.c.metadata.isnot(None)))
    for key_id, meta in rows.all():
        if not isinstance(meta, dict) or EXPIRES_META not in meta:
            continue
        rest = {k: v for k, v in meta.items() if k != EXPIRES_META}
        bind.execute(
            _keys.update()
            .where(_keys.c.id == key_id)
            .values(expires_at=_parse(meta[EXPIRES_META]), metadata=rest or None)
        )


def _day_of(postgres: bool) -> str:
    return "CAST(created_at AT TIME ZONE 'UTC' AS DATE)" if postgres else "date(created_at)"


def _rollup_with_probe() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "usage_daily_v2",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("api_key_id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("probe", sa.Boolean(), nullable=False, server_default=sa.false()),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in _SUMS),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP, "probe"),
    )
    group, sums = ", ".join(_GROUP), ", ".join(_SUMS)
    op.execute(
        f"INSERT INTO usage_daily_v2 ({group}, probe, {sums}, updated_at) "
        f"SELECT {group}, {'FALSE' if postgres else '0'}, {sums}, updated_at FROM usage_daily"
    )
    day = _day_of(postgres)
    keys = f"{day}, api_key_id, COALESCE(team_id, ''), COALESCE(model, ''), COALESCE(provider, '')"
    true = "TRUE" if postgres else "1"
    op.execute(
        f"INSERT INTO usage_daily_v2 ({group}, probe, {sums}, updated_at) "
        f"SELECT {keys}, {true}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cost_nanos), SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), CURRENT_TIMESTAMP "
        f"FROM usage_records WHERE probe = {true} AND api_key_id IS NOT NULL GROUP BY {keys}"
    )
    same = " AND ".join(f"p.{c} = usage_daily_v2.{c}" for c in _GROUP)
    probe_row = f"FROM usage_daily_v2 p WHERE p.probe = {true} AND {same}"
    less = ", ".join(
        f"{c} = CASE WHEN {c} > (SELECT p.{c} {probe_row}) "
        f"THEN {c} - (SELECT p.{c} {probe_row}) ELSE 0 END"
        for c in _SUMS
    )
    false = "FALSE" if postgres else "0"
    op.execute(
        f"UPDATE usage_daily_v2 SET {less} WHERE probe = {false} AND EXISTS (SELECT 1 {probe_row})"
    )
    op.execute(f"DELETE FROM usage_daily_v2 WHERE probe = {false} AND requests = 0")
    op.drop_index("ix_usage_daily_key_day", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_v2", "usage_daily")
    if postgres:  # the primary key's name follows the table's first name: tidy it
        op.execute(
            "ALTER TABLE usage_daily RENAME CONSTRAINT usage_daily_v2_pkey TO usage_daily_pkey"
        )
    op.create_index("ix_usage_daily_key_day", "usage_daily", ["api_key_id", "day"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "usage_daily_v1",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("api_key_id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in _SUMS),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP),
    )
    group = ", ".join(_GROUP)
    summed = ", ".join(f"SUM({c})" for c in _SUMS)
    op.execute(
        f"INSERT INTO usage_daily_v1 ({group}, {', '.join(_SUMS)}, updated_at) "
        f"SELECT {group}, {summed}, MAX(updated_at) FROM usage_daily GROUP BY {group}"
    )
    op.drop_index("ix_usage_daily_key_day", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_v1", "usage_daily")
    if postgres:
        op.execute(
            "ALTER TABLE usage_daily RENAME CONSTRAINT usage_daily_v1_pkey TO usage_daily_pkey"
        )
    op.create_index("ix_usage_daily_key_day", "usage_daily", ["api_key_id", "day"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_keys.c.id, _keys.c.metadata, _keys.c.expires_at).where(
            _keys.c.expires_at.isnot(None)
        )
    )
    for key_id, meta, ends in rows.all():
        at = ends if ends.tzinfo is not None else ends.replace(tzinfo=UTC)
        merged = {**(meta if isinstance(meta, dict) else {}), EXPIRES_META: at.isoformat()}
        bind.execute(_keys.update().where(_keys.c.id == key_id).values(metadata=merged))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
