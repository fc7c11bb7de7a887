"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(length=35), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("organization_in_charge", sa.String(length=255), server_default="", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("client_public_key", sa.Text(), nullable=False),
        sa.Column("adapter", sa.String(length=40), server_default="inbox", nullable=False),
        sa.Column("adapter_settings", sa.JSON(), nullable=False),
        sa.Column("may_send_to", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_agencies")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("document", sa.String(length=36), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_document"), ["document"], unique=False)

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "replay_cache",
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_replay_cache")),
    )
    with op.batch_alter_table("replay_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replay_cache_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "agency_certificates",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("agency_code", sa.String(length=35), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_code"], ["agencies.code"], name=op.f("fk_agency_certificates_agency_code_agencies")
        ),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_agency_certificates")),
    )
    with op.batch_alter_table("agency_certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agency_certificates_agency_code"), ["agency_code"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("sender", sa.String(length=35), nullable=False),
        sa.Column("document_id", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), server_default="", nullable=False),
        sa.Column("due_date", sa.String(length=10), nullable=True),
        sa.Column("signature_algorithm", sa.String(length=100), nullable=False),
        sa.Column("signer_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=False),
        sa.Column("seal", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["sender"], ["agencies.code"], name=op.f("fk_documents_sender_agencies")),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"], name=op.f("fk_documents_sha256_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("sender", "kind", "document_id", name="uq_documents_sender_kind_document_id"),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("document", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=35), nullable=False),
        sa.Column("adapter", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["document"], ["documents.id"], name=op.f("fk_routes_document_documents")),
        sa.ForeignKeyConstraint(["recipient"], ["agencies.code"], name=op.f("fk_routes_recipient_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("document", "recipient", name="uq_routes_document_recipient"),
    )
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routes_document"), ["document"], unique=False)
        batch_op.create_index("ix_routes_recipient_state_id", ["recipient", "state", "id"], unique=False)

    op.create_table(
        "statuses",
        sa.Column("message", sa.String(length=36), nullable=False),
        sa.Column("document", sa.String(length=36), nullable=False),
        sa.Column("from_agency", sa.String(length=35), nullable=False),
        sa.Column("status_code", sa.String(length=2), nullable=False),
        sa.Column("description", sa.String(length=500), server_default="", nullable=False),
        sa.Column("timestamp", sa.String(length=19), server_default="", nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document"], ["documents.id"], name=op.f("fk_statuses_document_documents")),
        sa.ForeignKeyConstraint(["message"], ["documents.id"], name=op.f("fk_statuses_message_documents")),
        sa.PrimaryKeyConstraint("message", name=op.f("pk_statuses")),
    )
    with op.batch_alter_table("statuses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statuses_document"), ["document"], unique=False)

    # The single sequencer row: appenders lock it with UPDATE … RETURNING, so indices have no gaps.
    op.bulk_insert(audit_head, [{"id": 1, "size": 0, "last_time_us": 0}])


def downgrade() -> None:
    with op.batch_alter_table("statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statuses_document"))

    op.drop_table("statuses")
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_index("ix_routes_recipient_state_id")
        batch_op.drop_index(batch_op.f("ix_routes_document"))

    op.drop_table("routes")
    op.drop_table("documents")
    with op.batch_alter_table("agency_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agency_certificates_agency_code"))

    op.drop_table("agency_certificates")
    with op.batch_alter_table("replay_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replay_cache_expires_at"))

    op.drop_table("replay_cache")
    op.drop_table("blobs")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_document"))

    op.drop_table("audit_entries")
    op.drop_table("agencies")
