"""What a participant may read: its inbox, a document's metadata and history, content and seal.

Only the sender and the recipients of a document can see it; anyone else gets the same
"not found" as for a document that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import AuditLog
from gateway.documents.edxml import STATUS_CODES
from gateway.policy import Refusal
from gateway.routing.events import document_event
from gateway.store.helpers import as_utc
from gateway.store.tables import blobs, documents, routes, statuses

MAX_PAGE = 100


def _not_found(doc_uuid: str) -> Refusal:
    return Refusal("document-not-found", f"no document {doc_uuid} is visible to the caller")


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def list_pending(conn: Connection, recipient: str, after: int, limit: int) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_PAGE))
    rows = conn.execute(
        sa.select(
            routes.c.id.label("cursor"),
            documents,
            blobs.c.size,
            statuses.c.document.label("response_for"),
            statuses.c.status_code,
        )
        .join(documents, documents.c.id == routes.c.document)
        .join(blobs, blobs.c.sha256 == documents.c.sha256)
        .outerjoin(statuses, statuses.c.message == documents.c.id)
        .where(routes.c.recipient == recipient, routes.c.state == "pending", routes.c.id > after)
        .order_by(routes.c.id)
        .limit(limit + 1)
    ).all()
    items = [_summary(r) for r in rows[:limit]]
    next_cursor = rows[limit - 1].cursor if len(rows) > limit else None
    return {"items": items, "next_after": next_cursor}


def _summary(row: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "document_id": row.document_id,
        "sender": row.sender,
        "subject": row.subject,
        "due_date": row.due_date,
        "sha256": row.sha256,
        "size": row.size,
        "received_at": _iso(row.received_at),
        "audit_index": row.audit_index,
        "links": {
            "self": f"/v1/documents/{row.id}",
            "content": f"/v1/documents/{row.id}/content",
            "seal": f"/v1/documents/{row.id}/seal",
            "ack": f"/v1/inbox/{row.id}/ack",
        },
    }
    if row.kind == "status":
        item["response_for"] = row.response_for
        item["status_code"] = row.status_code
    return item


def acknowledge(conn: Connection, audit: AuditLog, recipient: str, doc_uuid: str) -> dict[str, Any]:
    route = conn.execute(
        sa.select(routes).where(routes.c.document == doc_uuid, routes.c.recipient == recipient)
    ).one_or_none()
    if route is None:
        raise _not_found(doc_uuid)
    acknowledged_at = route.acknowledged_at
    if route.state != "acknowledged":
        acknowledged_at = datetime.now(UTC)
        conn.execute(
            sa.update(routes)
            .where(routes.c.id == route.id)
            .values(state="acknowledged", acknowledged_at=acknowledged_at)
        )
        doc = conn.execute(sa.select(documents).where(documents.c.id == doc_uuid)).one()
        audit.append(conn, document_event(doc, "delivery.acknowledged", actor=recipient, recipient=recipient))
    return {"id": doc_uuid, "recipient": recipient, "state": "acknowledged", "acknowledged_at": _iso(acknowledged_at)}


def hidden_from(conn: Connection, caller: str, doc_uuid: str) -> frozenset[str]:
    """The agencies whose part of a document ``caller`` may not see: none for the sender, the other
    recipients for a recipient (raises not-found, like the document, for anyone else)."""
    doc = _visible_document(conn, caller, doc_uuid)
    if caller == doc.sender:
        return frozenset()
    others = conn.execute(sa.select(routes.c.recipient).where(routes.c.document == doc_uuid)).scalars()
    return frozenset(others) - {caller, doc.sender}


def _visible_document(conn: Connection, caller: str, doc_uuid: str) -> Any:
    doc = conn.execute(sa.select(documents).where(documents.c.id == doc_uuid)).one_or_none()
    if doc is None:
        raise _not_found(doc_uuid)
    if doc.sender != caller:
        route = conn.execute(
            sa.select(routes.c.id).where(routes.c.document == doc_uuid, routes.c.recipient == caller)
        ).one_or_none()
        if route is None:
            raise _not_found(doc_uuid)
    return doc


def document_view(conn: Connection, caller: str, doc_uuid: str) -> dict[str, Any]:
    """The sender sees every recipient's progress; a recipient sees the document, who else it went to,
    and only its own delivery and statuses (issue 10, finding 8: co-recipients saw each other's)."""
    doc = _visible_document(conn, caller, doc_uuid)
    own = None if caller == doc.sender else caller
    size = conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == doc.sha256)).scalar_one()
    view: dict[str, Any] = {
        "id": doc.id,
        "kind": doc.kind,
        "document_id": doc.document_id,
        "sender": doc.sender,
        "subject": doc.subject,
        "due_date": doc.due_date,
        "sha256": doc.sha256,
        "size": size,
        "received_at": _iso(doc.received_at),
        "audit_index": doc.audit_index,
        "signature": {"algorithm": doc.signature_algorithm, "signer_certificate_sha256": doc.signer_fingerprint},
        "recipients": [
            {
                "agency": r.recipient,
                "state": r.state,
                "acknowledged_at": _iso(r.acknowledged_at) if r.acknowledged_at else None,
            }
            if own in (None, r.recipient)
            else {"agency": r.recipient}
            for r in conn.execute(sa.select(routes).where(routes.c.document == doc.id).order_by(routes.c.recipient))
        ],
    }
    if doc.kind == "document":
        view["statuses"] = [
            {
                "message": s.message,
                "from": s.from_agency,
                "status_code": s.status_code,
                "meaning": STATUS_CODES.get(s.status_code, ""),
                "description": s.description,
                "timestamp": s.timestamp,
                "received_at": _iso(s.received_at),
            }
            for s in conn.execute(
                sa.select(statuses).where(statuses.c.document == doc.id).order_by(statuses.c.received_at)
            )
            if own in (None, s.from_agency)
        ]
    else:
        link = conn.execute(sa.select(statuses).where(statuses.c.message == doc.id)).one_or_none()
        if link is not None:
            view["response_for"] = link.document
            view["status_code"] = link.status_code
    return view


def document_content(conn: Connection, caller: str, doc_uuid: str) -> tuple[str, int]:
    """The SHA-256 and size of the bytes ``caller`` may download; the bytes are read in pieces by
    ``gateway.store.blob_io.blob_pieces`` (content-addressed: they never change once stored)."""
    doc = _visible_document(conn, caller, doc_uuid)
    size = conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == doc.sha256)).scalar_one()
    return str(doc.sha256), int(size)


def document_seal(conn: Connection, caller: str, doc_uuid: str) -> bytes:
    return bytes(_visible_document(conn, caller, doc_uuid).seal)
