"""Merkle audit log: stored subtree hashes, signed checkpoints, append-only triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")


def _backfill_nodes(conn: sa.engine.Connection) -> None:
    """Subtree hashes for entries written before this revision (RFC 9162 §2.1.1 hashing, spelled out here
    so the migration never changes when application code does)."""
    nodes: dict[tuple[int, int], bytes] = {}
    rows = conn.execute(sa.text("SELECT idx, body FROM audit_entries ORDER BY idx"))
    for idx, body in rows:
        level, i = 0, int(idx)
        h = hashlib.sha256(b"\x00" + bytes(body)).digest()
        nodes[(0, i)] = h
        while i & 1:
            h = hashlib.sha256(b"\x01" + nodes[(level, i - 1)] + h).digest()
            level, i = level + 1, i >> 1
            nodes[(level, i)] = h
    if nodes:
        conn.execute(
            sa.text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:level, :idx, :hash)"),
            [{"level": lv, "idx": i, "hash": h} for (lv, i), h in nodes.items()],
        )


def upgrade() -> None:
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    conn = op.get_bind()
    _backfill_nodes(conn)
    if conn.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            )
    else:
        for table in TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {action} on {table} refused'); END"
                )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        for table in TABLES:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
