"""workbench sessions kept on the server, so logout and a removed role end them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workbench_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("display", sa.String(300), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_workbench_sessions_actor", "workbench_sessions", ["actor"])


def downgrade() -> None:
    op.drop_index("ix_workbench_sessions_actor", table_name="workbench_sessions")
    op.drop_table("workbench_sessions")
