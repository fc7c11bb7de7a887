"""Gathering a stored document's evidence (the parts of :class:`~gateway.trust.evidence.EvidenceParts`).

The document must be timestamped and its audit entries covered by a signed checkpoint before there
is a package to give: until then the caller is told to retry (``evidence-not-ready``), never handed
a package that cannot prove its signing time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.checkpoints import SignedCheckpoint
from gateway.audit.receipt import build_receipt
from gateway.policy import Refusal
from gateway.store.tables import blobs, documents, statuses, timestamp_batches, trust_evidence
from gateway.trust.evidence import EvidenceParts
from gateway.trust.timestamper import batch_inclusion, leaf_index


def _filed_under(conn: Connection, doc: Any) -> str:
    """The audit log files a status message's entries under the document it answers."""
    if doc.kind != "status":
        return str(doc.id)
    return str(conn.execute(sa.select(statuses.c.document).where(statuses.c.message == doc.id)).scalar_one())


def collect_evidence(conn: Connection, doc_uuid: str, checkpoint: SignedCheckpoint, audit_vkey: str) -> EvidenceParts:
    doc = conn.execute(sa.select(documents).where(documents.c.id == doc_uuid)).one_or_none()
    if doc is None:
        raise Refusal("document-not-found", f"no document {doc_uuid}")
    if doc.timestamp_batch is None or doc.signature_value is None:
        raise Refusal(
            "evidence-not-ready",
            "the document's trusted timestamp has not been obtained yet; retry in a few seconds "
            "(or see `timestamps` in /readyz when the TSA is down)",
        )
    if checkpoint.size <= int(doc.audit_index):
        raise Refusal("evidence-not-ready", "no signed checkpoint covers the document's audit entry yet; retry")
    batch = conn.execute(sa.select(timestamp_batches).where(timestamp_batches.c.id == doc.timestamp_batch)).one()
    token = conn.execute(sa.select(trust_evidence.c.content).where(trust_evidence.c.sha256 == batch.token)).scalar_one()
    status = None
    status_kind = None
    if doc.signer_status is not None:
        found = conn.execute(
            sa.select(trust_evidence.c.kind, trust_evidence.c.content).where(
                trust_evidence.c.sha256 == doc.signer_status
            )
        ).one()
        status_kind, status = found.kind, bytes(found.content)
    index = leaf_index(bytes(batch.leaves), bytes(doc.signature_value))
    root, path = batch_inclusion(bytes(batch.leaves), index)
    content = conn.execute(sa.select(blobs.c.content).where(blobs.c.sha256 == doc.sha256)).scalar_one()
    return EvidenceParts(
        document_uuid=doc.id,
        kind=doc.kind,
        document=bytes(content),
        seal=bytes(doc.seal),
        signer_chain_pem=doc.signer_chain or "",
        status_kind=status_kind,
        status=status,
        status_flag=doc.status_flag,
        token=bytes(token),
        batch_root=root,
        batch_size=int(batch.size),
        leaf_index=index,
        inclusion_path=path,
        receipt=build_receipt(conn, _filed_under(conn, doc), checkpoint),
        audit_vkey=audit_vkey,
    )
