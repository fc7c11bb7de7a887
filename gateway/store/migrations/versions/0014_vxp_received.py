"""documents received from the national document axis (VXP)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "vxp_received",
        sa.Column("doc_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(35), nullable=False),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("gateway_id", sa.String(36), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("answered_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("doc_id", name=op.f("pk_vxp_received")),
    )


def downgrade() -> None:
    op.drop_table("vxp_received")
