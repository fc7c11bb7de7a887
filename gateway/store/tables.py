"""The tables.  Alembic migrations in ``migrations/versions`` create and change them.

Documents' bytes live in ``blobs`` keyed by SHA-256 so identical content is stored once; every
other table refers to a document by the gateway's own ``documents.id`` (a UUID string), which is
the stable id receivers deduplicate on.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTC_DATETIME = sa.DateTime(timezone=True)

agencies = sa.Table(
    "agencies",
    metadata,
    sa.Column("code", sa.String(35), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("organization_in_charge", sa.String(255), nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("client_public_key", sa.Text, nullable=False),
    sa.Column("adapter", sa.String(40), nullable=False, server_default="inbox"),
    sa.Column("adapter_settings", sa.JSON, nullable=False),
    sa.Column("may_send_to", sa.JSON, nullable=False),
    sa.Column("created_at", UTC_DATETIME, nullable=False),
    sa.Column("updated_at", UTC_DATETIME, nullable=False),
    # A rotated-out client key keeps authenticating until ``previous_client_key_until``, so a
    # departmental system can switch keys without a moment in which neither works.
    sa.Column("previous_client_public_key", sa.Text, nullable=True),
    sa.Column("previous_client_key_until", UTC_DATETIME, nullable=True),
)

# Every change to the registry (agencies, their certificates, keys, adapters) increments this one
# row in the same transaction, so each process can cache the registry and notice any change,
# from any worker or host, by reading one number (gateway.routing.registry_cache).
registry_generation = sa.Table(
    "registry_generation",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)

agency_certificates = sa.Table(
    "agency_certificates",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("agency_code", sa.String(35), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("subject", sa.String(1024), nullable=False),
    sa.Column("not_before", UTC_DATETIME, nullable=False),
    sa.Column("not_after", UTC_DATETIME, nullable=False),
    sa.Column("added_at", UTC_DATETIME, nullable=False),
    sa.Column("removed_at", UTC_DATETIME, nullable=True),  # kept, so old evidence still names its owner
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "document" | "status"
    sa.Column("sender", sa.String(35), sa.ForeignKey("agencies.code"), nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("subject", sa.String(500), nullable=False, server_default=""),
    sa.Column("due_date", sa.String(10), nullable=True),
    sa.Column("signature_algorithm", sa.String(100), nullable=False),
    sa.Column("signer_fingerprint", sa.String(64), nullable=False),
    sa.Column("received_at", UTC_DATETIME, nullable=False),
    sa.Column("audit_index", sa.BigInteger, nullable=False),
    sa.Column("seal", sa.LargeBinary, nullable=False),
    # Recipients still to be routed, in order, for procedures handled one agency after another.
    sa.Column("pending_recipients", sa.JSON, nullable=True),
    # Trust evidence (issue 9): the signature value the timestamp covers, the signer's verified chain
    # (PEM, leaf first), the OCSP response or CRL the decision used, a flag when status was unknown
    # and accepted by configuration, and the timestamp batch once timestamped.
    sa.Column("signature_value", sa.LargeBinary, nullable=True),
    sa.Column("signer_chain", sa.Text, nullable=True),
    sa.Column("signer_status", sa.String(64), nullable=True),
    sa.Column("status_flag", sa.String(300), nullable=True),
    sa.Column("timestamp_batch", sa.BigInteger, nullable=True),
    sa.Index("ix_documents_untimestamped", "timestamp_batch", "received_at"),
    sa.UniqueConstraint("sender", "kind", "document_id", name="uq_documents_sender_kind_document_id"),
)

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("document", sa.String(36), sa.ForeignKey("documents.id"), nullable=False, index=True),
    sa.Column("recipient", sa.String(35), sa.ForeignKey("agencies.code"), nullable=False),
    sa.Column("adapter", sa.String(40), nullable=False),
    # pull: "pending" (in the inbox) → "acknowledged".  push: "queued" → "delivering" (claimed under a
    # lease) → "awaiting-receipt" / "checking" → "delivered", or back to "queued", or "dead".
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("created_at", UTC_DATETIME, nullable=False),
    sa.Column("acknowledged_at", UTC_DATETIME, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
    sa.Column("lease_until", UTC_DATETIME, nullable=True),
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Column("receipt", sa.LargeBinary, nullable=True),
    sa.Column("delivered_at", UTC_DATETIME, nullable=True),
    sa.UniqueConstraint("document", "recipient", name="uq_routes_document_recipient"),
    sa.Index("ix_routes_recipient_state_id", "recipient", "state", "id"),
    sa.Index("ix_routes_state_next_attempt_at", "state", "next_attempt_at"),
)

statuses = sa.Table(
    "statuses",
    metadata,
    sa.Column("message", sa.String(36), sa.ForeignKey("documents.id"), primary_key=True),
    sa.Column("document", sa.String(36), sa.ForeignKey("documents.id"), nullable=False, index=True),
    sa.Column("from_agency", sa.String(35), nullable=False),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("timestamp", sa.String(19), nullable=False, server_default=""),
    sa.Column("received_at", UTC_DATETIME, nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("last_time_us", sa.BigInteger, nullable=False),
)

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("document", sa.String(36), nullable=True, index=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

# Hash of every perfect subtree [idx·2^level, (idx+1)·2^level) of the audit log's Merkle tree
# (RFC 9162), written by the append itself, so roots and proofs need O(log² n) lookups.
audit_nodes = sa.Table(
    "audit_nodes",
    metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

# Witnesses the gateway sends its checkpoints to (issue 13): how far each has cosigned, and why not further.
audit_witnesses = sa.Table(
    "audit_witnesses",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),  # the newest size the witness cosigned for us
    sa.Column("attempted_us", sa.BigInteger, nullable=False),
    sa.Column("problem", sa.Text),  # the last attempt's failure, None once it succeeds
)

# Their cosignature lines, per checkpoint: served with the checkpoint and put in bundles and receipts.
audit_cosignatures = sa.Table(
    "audit_cosignatures",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("witness", sa.String(255), primary_key=True),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("cosigned_at", sa.BigInteger, nullable=False),  # the cosignature's own timestamp (seconds)
)

# Documents taken from the national axis (gateway.vxp.receiver): the axis's docId once, what the
# gateway decided, and whether the axis was told (updateStatus), so a restart neither submits twice
# nor leaves the axis unanswered.
vxp_received = sa.Table(
    "vxp_received",
    metadata,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("sender", sa.String(35), nullable=False),
    sa.Column("message_type", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # accepted | refused
    sa.Column("gateway_id", sa.String(36), nullable=True),
    sa.Column("code", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("received_at", UTC_DATETIME, nullable=False),
    sa.Column("answered_at", UTC_DATETIME, nullable=True),
)

# The axis's agency directory (gateway.vxp.directory): both code forms, as last synced.
vxp_directory = sa.Table(
    "vxp_directory",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("code102", sa.String(64), nullable=True),
    sa.Column("parent", sa.String(64), nullable=True),
    sa.Column("mail", sa.String(255), nullable=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("modified", sa.String(64), nullable=True),
    sa.Column("synced_at", UTC_DATETIME, nullable=False),
    sa.Column("deleted_at", UTC_DATETIME, nullable=True),
)

# Departmental systems built on the national SDK (gateway.vxp.credentials): their secret, sealed.
vxp_credentials = sa.Table(
    "vxp_credentials",
    metadata,
    sa.Column("systemid", sa.String(64), primary_key=True),
    sa.Column("agency", sa.String(35), nullable=False),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTC_DATETIME, nullable=False),
)

APPEND_ONLY_TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")

# What auditors search by, copied out of each entry at append time.  Derived data, not part of the
# Merkle log: it can always be rebuilt from audit_entries.
audit_search = sa.Table(
    "audit_search",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=True, index=True),
    # Who an unauthenticated request said it was (issue 13): searched only when an auditor asks.
    sa.Column("claimed_actor", sa.String(64), nullable=True, index=True),
    sa.Column("sender", sa.String(35), nullable=True, index=True),
    sa.Column("recipient", sa.String(35), nullable=True, index=True),
    sa.Column("document", sa.String(36), nullable=True, index=True),
    sa.Column("document_id", sa.String(255), nullable=True, index=True),
)

# OCSP responses, CRLs and timestamp tokens exactly as received, stored once by SHA-256 however many
# documents they vouch for.
trust_evidence = sa.Table(
    "trust_evidence",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "ocsp" | "crl" | "timestamp"
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTC_DATETIME, nullable=False),
)

# One RFC 3161 token per batch: its message imprint is the RFC 9162 Merkle root of the batch's
# signature values, so one TSA call covers every document accepted in that second.
timestamp_batches = sa.Table(
    "timestamp_batches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("leaves", sa.LargeBinary, nullable=False),  # the batch's leaf hashes, 32 bytes each, in order
    sa.Column("token", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=False),
    sa.Column("gen_time", UTC_DATETIME, nullable=False),
    sa.Column("tsa_status", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=True),
)

checkpoint_timestamps = sa.Table(
    "checkpoint_timestamps",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("token", sa.String(64), sa.ForeignKey("trust_evidence.sha256"), nullable=False),
    sa.Column("gen_time", UTC_DATETIME, nullable=False),
)

replay_cache = sa.Table(
    "replay_cache",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("document", sa.String(36), sa.ForeignKey("documents.id"), nullable=False, unique=True),
    sa.Column("citizen", sa.String(64), nullable=False, index=True),  # keyed hash of the personal ID
    sa.Column("issuer", sa.String(255), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("procedure", sa.String(32), nullable=False),
    sa.Column("created_at", UTC_DATETIME, nullable=False),
    sa.Column("due_date", sa.String(10), nullable=False),
)

# Citizens' satisfaction (issue 11): one rating per finished dossier, 1-5, with an optional comment.
dossier_ratings = sa.Table(
    "dossier_ratings",
    metadata,
    sa.Column("dossier", sa.String(36), sa.ForeignKey("dossiers.id"), primary_key=True),
    sa.Column("score", sa.SmallInteger, nullable=False),
    sa.Column("comment", sa.String(1000), nullable=False, server_default=""),
    sa.Column("rated_at", UTC_DATETIME, nullable=False, index=True),
    sa.Column("audit_index", sa.BigInteger, nullable=False),
)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# Workbench sessions live on the server (issue 10, finding 4): the cookie holds only a random token
# whose SHA-256 is the key here, so logging out or a lapsed role ends the session everywhere.
# Times are Unix seconds.
workbench_sessions = sa.Table(
    "workbench_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("actor", sa.String(80), nullable=False, index=True),
    sa.Column("display", sa.String(300), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
)
