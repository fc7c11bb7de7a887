"""trust evidence: revocation responses and timestamp tokens, certificate lifecycle, client-key rotation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trust_evidence",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "timestamp_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("leaves", sa.LargeBinary(), nullable=False),
        sa.Column("token", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=False),
        sa.Column("gen_time", UTC_DATETIME, nullable=False),
        sa.Column("tsa_status", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=True),
    )
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("signature_value", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("signer_chain", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signer_status", sa.String(64), nullable=True))
        batch.add_column(sa.Column("status_flag", sa.String(300), nullable=True))
        batch.add_column(sa.Column("timestamp_batch", sa.BigInteger(), nullable=True))
    op.create_index("ix_documents_untimestamped", "documents", ["timestamp_batch", "received_at"])
    with op.batch_alter_table("agency_certificates") as batch:
        batch.add_column(sa.Column("removed_at", UTC_DATETIME, nullable=True))
    with op.batch_alter_table("agencies") as batch:
        batch.add_column(sa.Column("previous_client_public_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_client_key_until", UTC_DATETIME, nullable=True))
    op.create_table(
        "checkpoint_timestamps",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("token", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=False),
        sa.Column("gen_time", UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoint_timestamps")
    with op.batch_alter_table("agencies") as batch:
        batch.drop_column("previous_client_key_until")
        batch.drop_column("previous_client_public_key")
    with op.batch_alter_table("agency_certificates") as batch:
        batch.drop_column("removed_at")
    op.drop_index("ix_documents_untimestamped", table_name="documents")
    with op.batch_alter_table("documents") as batch:
        for name in (
            "timestamp_batch",
            "status_flag",
            "signer_status",
            "signer_chain",
            "signature_value",
        ):
            batch.drop_column(name)
    op.drop_table("timestamp_batches")
    op.drop_table("trust_evidence")
