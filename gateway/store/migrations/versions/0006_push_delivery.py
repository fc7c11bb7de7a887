"""push delivery: attempts, back-off, leases and receipts on routes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("lease_until", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("reference", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("receipt", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("delivered_at", UTC_DATETIME, nullable=True))
    op.create_index("ix_routes_state_next_attempt_at", "routes", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_routes_state_next_attempt_at", table_name="routes")
    with op.batch_alter_table("routes") as batch:
        for name in (
            "delivered_at",
            "receipt",
            "reference",
            "last_error",
            "claimed_by",
            "lease_until",
            "next_attempt_at",
            "attempts",
        ):
            batch.drop_column(name)
