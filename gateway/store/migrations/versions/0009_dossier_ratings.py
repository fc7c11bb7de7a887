"""citizens' satisfaction: one rating per finished dossier

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dossier_ratings",
        sa.Column("dossier", sa.String(36), sa.ForeignKey("dossiers.id"), primary_key=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.String(1000), nullable=False, server_default=""),
        sa.Column("rated_at", UTC_DATETIME, nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_dossier_ratings_rated_at", "dossier_ratings", ["rated_at"])


def downgrade() -> None:
    op.drop_index("ix_dossier_ratings_rated_at", table_name="dossier_ratings")
    op.drop_table("dossier_ratings")
