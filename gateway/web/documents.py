"""A document as an auditor asks about it, and a single log entry with its proof.

The document page answers "what is this, who got it, was it handled in time, and can I prove it":
number, subject, sender and recipients by name, due date, each recipient's delivery and status
history, processing time in working days, the on-time verdict, and every entry of its timeline with
an inclusion proof that can be opened and downloaded (and checked with ``gateway audit
verify-receipt``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask import Response
from sqlalchemy.engine import Connection

from gateway.api.auditors import Auditor, record_read
from gateway.api.evidence import evidence_download as evidence_package
from gateway.api.paging import MAX_CURSOR
from gateway.audit.checkpoint import Checkpoint, open_checkpoint
from gateway.audit.checkpoints import SignedCheckpoint
from gateway.audit.log import StoredTree
from gateway.audit.merkle import hash_leaf, inclusion_path, verify_inclusion
from gateway.audit.receipt import receipt_of
from gateway.audit.statistics import agency_names
from gateway.citizen.dossier import LOCAL
from gateway.documents import edxml, xmlsafe
from gateway.documents.edxml import due_day
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.helpers import as_utc
from gateway.store.tables import audit_entries, audit_search, blobs, documents, routes, statuses
from gateway.web.blueprint import auditor_page, bp, page, wants_json
from gateway.web.reasons import PageRefusal
from gateway.working_days import working_days_between


def latest_checkpoint(*, force: bool = False) -> tuple[SignedCheckpoint, Checkpoint]:
    """The newest signed checkpoint, and its contents as read back through the verifier key."""
    svc = services()
    signed = svc.witnessed_checkpoint() if force else svc.checkpoints.refresh()
    return signed, open_checkpoint(signed.note, svc.ring.checkpoint_verifier)


def proof_status(tree: StoredTree, index: int, body: bytes, checkpoint: Checkpoint) -> str:
    if index >= checkpoint.size:
        return "pending"
    path = inclusion_path(tree, index, checkpoint.size)
    if verify_inclusion(index, checkpoint.size, hash_leaf(body), path, checkpoint.root):
        return "verified"
    return "mismatch"  # the stored entry is not the one the checkpoint signed


def _local(moment: datetime | None) -> date | None:
    return as_utc(moment).astimezone(LOCAL).date() if moment is not None else None


@dataclass(frozen=True)
class Recipient:
    code: str
    name: str
    state: str
    routed_at: datetime | None
    done_at: datetime | None
    days: int | None  # working days from routing to its first 06
    verdict: str  # on_time | late | open | overdue | no_due
    last_error: str | None


def _verdict(due: date | None, done: date | None, today: date) -> str:
    if done is not None:
        return "on_time" if due is None or done <= due else "late"
    if due is not None and today > due:
        return "overdue"
    return "open"


def _recipients(conn: Connection, doc: Any, names: dict[str, str]) -> list[Recipient]:
    first_done: dict[str, datetime] = {}
    for agency, moment in conn.execute(
        sa.select(statuses.c.from_agency, sa.func.min(statuses.c.received_at))
        .where(statuses.c.document == doc.id, statuses.c.status_code == "06")
        .group_by(statuses.c.from_agency)
    ):
        first_done[str(agency)] = moment
    due, today = due_day(doc.due_date), datetime.now(UTC).astimezone(LOCAL).date()
    found = []
    for r in conn.execute(sa.select(routes).where(routes.c.document == doc.id).order_by(routes.c.id)):
        done = first_done.get(r.recipient)
        routed, finished = _local(r.created_at), _local(done)
        found.append(
            Recipient(
                code=r.recipient,
                name=names.get(r.recipient, r.recipient),
                state=r.state,
                routed_at=r.created_at,
                done_at=done,
                days=working_days_between(routed, finished) if routed and finished else None,
                verdict=_verdict(due, finished, today),
                last_error=r.last_error,
            )
        )
    for code in doc.pending_recipients or []:  # a sequential procedure's agencies not reached yet
        found.append(Recipient(str(code), names.get(str(code), str(code)), "waiting", None, None, None, "open", None))
    return found


def _facts(conn: Connection, sha256: str) -> edxml.DocumentFacts | None:
    """Read from the stored bytes, which are the signed document: number, kind, signer, classification."""
    content = conn.execute(sa.select(blobs.c.content).where(blobs.c.sha256 == sha256)).scalar_one_or_none()
    if content is None:
        return None
    try:
        stored = bytes(content)  # accepted under the deployment's size limit, whatever it was then
        return edxml.read_document_facts(xmlsafe.parse(stored, xmlsafe.XmlLimits(max_bytes=len(stored))))
    except (Refusal, ValueError):
        return None


@bp.get("/documents/<doc_id>")
@auditor_page
def timeline(auditor: Auditor, doc_id: str) -> str | tuple[str, int]:
    """Everything about one document, from submission to its last status, each entry with its proof."""
    _signed, checkpoint = latest_checkpoint()
    with services().db.read() as conn:
        doc = conn.execute(
            sa.select(documents).where(documents.c.id == doc_id, documents.c.kind == "document")
        ).one_or_none()
        found = conn.execute(
            sa.select(audit_entries.c.idx, audit_entries.c.body)
            .join(audit_search, audit_search.c.idx == audit_entries.c.idx)
            .where(audit_search.c.document == doc_id)
            .order_by(audit_entries.c.idx)
        ).all()
        if doc is None and not found:
            record_read(auditor, "auditor.timeline", f"workbench document {doc_id[:100]} (not found)")
            if wants_json():  # as every other workbench 404 answers a script
                raise PageRefusal("not-found", "no-such-document")
            return page("not_found.html", doc_id=doc_id), 404
        names = agency_names(conn)
        tree = StoredTree(conn)
        rows = [
            {
                "index": int(r.idx),
                "entry": json.loads(bytes(r.body)),
                "proof": proof_status(tree, int(r.idx), bytes(r.body), checkpoint),
            }
            for r in found
        ]
        recipients = _recipients(conn, doc, names) if doc is not None else []
        history = (
            conn.execute(
                sa.select(statuses).where(statuses.c.document == doc_id).order_by(statuses.c.received_at)
            ).all()
            if doc is not None
            else []
        )
        facts = _facts(conn, doc.sha256) if doc is not None else None
    record_read(auditor, "auditor.timeline", f"workbench document {doc_id}")
    return page(
        "timeline.html",
        doc=doc,
        doc_id=doc_id,
        rows=rows,
        names=names,
        recipients=recipients,
        history=history,
        facts=facts,
        checkpoint_size=checkpoint.size,
    )


@bp.get("/documents/<doc_id>/evidence")
@auditor_page
def evidence_download(auditor: Auditor, doc_id: str) -> Response:
    """The same package as ``GET /v1/documents/{id}/evidence``, for the auditor's browser session."""
    return evidence_package(doc_id, auditor, "workbench")


def _entry(conn: Connection, index: int) -> bytes:
    if index > MAX_CURSOR:  # beyond the databases' BIGINT: no such entry, and no query about it
        raise PageRefusal("not-found", "no-such-entry", index=index)
    body = conn.execute(sa.select(audit_entries.c.body).where(audit_entries.c.idx == index)).scalar_one_or_none()
    if body is None:
        raise PageRefusal("not-found", "no-such-entry", index=index)
    return bytes(body)


@bp.get("/entries/<int:index>")
@auditor_page
def entry(auditor: Auditor, index: int) -> str:
    """One entry: all its fields, its leaf hash and inclusion proof, and the checkpoint it is proved against."""
    signed, checkpoint = latest_checkpoint()
    with services().db.read() as conn:
        body = _entry(conn, index)
        tree = StoredTree(conn)
        status = proof_status(tree, index, body, checkpoint)
        path = inclusion_path(tree, index, checkpoint.size) if index < checkpoint.size else []
        names = agency_names(conn)
    record_read(auditor, "auditor.entry", f"workbench entry {index}")
    return page(
        "entry.html",
        index=index,
        entry=json.loads(body),
        raw=json.dumps(json.loads(body), ensure_ascii=False, indent=2),
        leaf=hash_leaf(body).hex(),
        path=[h.hex() for h in path],
        status=status,
        checkpoint=checkpoint,
        note=signed.note,
        names=names,
    )


@bp.get("/entries/<int:index>.json")
@auditor_page
def entry_json(auditor: Auditor, index: int) -> Response:
    """The entry as a one-entry receipt: ``gateway audit verify-receipt`` checks it offline."""
    with services().db.read() as conn:
        _entry(conn, index)  # no such entry: a 404 at once, not after waiting for a checkpoint
    signed, _checkpoint = latest_checkpoint(force=True)  # the entry is covered, even if it is this second's
    with services().db.read() as conn:
        body = _entry(conn, index)
        receipt = receipt_of(conn, json.loads(body).get("document"), [(index, body)], signed)
    record_read(auditor, "auditor.entry", f"workbench entry {index} json")
    response = Response(json.dumps(receipt, ensure_ascii=False, indent=1), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-entry-{index}.json"'
    return response
