"""the national axis's agency directory

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "vxp_directory",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("code102", sa.String(64), nullable=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("mail", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("modified", sa.String(64), nullable=True),
        sa.Column("synced_at", UTC_DATETIME, nullable=False),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_vxp_directory")),
    )


def downgrade() -> None:
    op.drop_table("vxp_directory")
