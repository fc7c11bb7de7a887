"""audit log: TRUNCATE refused on PostgreSQL

The row-level append-only triggers of 0004 do not fire for TRUNCATE, which empties a table in one
statement (issue 13).  A statement-level BEFORE TRUNCATE trigger refuses it.  SQLite has no
TRUNCATE: its unqualified DELETE runs the row triggers of 0004.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LOG_TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'the audit log is append-only: TRUNCATE on % refused', TG_TABLE_NAME; END $$"
    )
    for table in LOG_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in LOG_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute("DROP FUNCTION IF EXISTS audit_no_truncate()")
