"""credentials of departmental systems built on the national SDK

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vxp_credentials",
        sa.Column("systemid", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(35), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("systemid", name=op.f("pk_vxp_credentials")),
    )


def downgrade() -> None:
    op.drop_table("vxp_credentials")
