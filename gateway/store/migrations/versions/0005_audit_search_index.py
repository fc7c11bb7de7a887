"""Auditors' search index over the audit log (derived, rebuildable)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("event", "outcome", "actor", "sender", "recipient", "document", "document_id")


def upgrade() -> None:
    op.create_table(
        "audit_search",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("sender", sa.String(length=35), nullable=True),
        sa.Column("recipient", sa.String(length=35), nullable=True),
        sa.Column("document", sa.String(length=36), nullable=True),
        sa.Column("document_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_search")),
    )
    for column in ("time_us", *COLUMNS):
        op.create_index(op.f(f"ix_audit_search_{column}"), "audit_search", [column], unique=False)
    conn = op.get_bind()
    rows = []
    entries = conn.execute(sa.text("SELECT idx, time_us, event, body FROM audit_entries ORDER BY idx"))
    for idx, time_us, event, body in entries:
        entry = json.loads(bytes(body))
        row = {c: entry.get(c) for c in COLUMNS}
        row.update(
            idx=idx,
            time_us=time_us,
            event=event,
            outcome=row["outcome"] or "",
            actor=(row["actor"] or "")[:128] or None,
        )
        rows.append(row)
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO audit_search (idx, time_us, event, outcome, actor, sender, recipient, document, "
                "document_id) VALUES (:idx, :time_us, :event, :outcome, :actor, :sender, :recipient, :document, "
                ":document_id)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_table("audit_search")
