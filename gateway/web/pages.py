"""The auditor's pages: search, a document's timeline, the checkpoint, statistics, export.

Each page reads through the same queries as the auditor API and is itself an audit entry
(``auditor.*``), so the log records who looked at what.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Response, request

from gateway.api.auditors import (
    Auditor,
    export_requested_range,
    record_read,
    requested_period,
    search_query,
    zip_download,
)
from gateway.api.evidence import evidence_download as evidence_package
from gateway.audit.checkpoint import Checkpoint, open_checkpoint
from gateway.audit.checkpoints import SignedCheckpoint
from gateway.audit.log import StoredTree
from gateway.audit.merkle import (
    consistency_path,
    hash_leaf,
    inclusion_path,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from gateway.audit.statistics import FIELDS, AgencyFigures, as_csv
from gateway.citizen.dossier import LOCAL
from gateway.services import services
from gateway.store.tables import audit_checkpoints, audit_entries, audit_search
from gateway.web.blueprint import auditor_page, bp, check_csrf, page


def _latest_checkpoint() -> tuple[SignedCheckpoint, Checkpoint]:
    """The newest signed checkpoint, and its contents as read back through the verifier key."""
    svc = services()
    signed = svc.checkpoints.refresh()
    return signed, open_checkpoint(signed.note, svc.ring.checkpoint_verifier)


def _proof_status(tree: StoredTree, index: int, body: bytes, checkpoint: Checkpoint) -> str:
    if index >= checkpoint.size:
        return "pending"
    path = inclusion_path(tree, index, checkpoint.size)
    if verify_inclusion(index, checkpoint.size, hash_leaf(body), path, checkpoint.root):
        return "verified"
    return "mismatch"  # the stored entry is not the one the checkpoint signed


@bp.get("/")
@auditor_page
def search(auditor: Auditor) -> str:
    query, _after, limit = search_query()
    with services().db.read() as conn:
        rows = conn.execute(query).all()
    record_read(auditor, "auditor.search", "workbench " + request.query_string.decode()[:480])
    items = [{"index": int(r.idx), "entry": json.loads(bytes(r.body))} for r in rows[:limit]]
    next_after = int(rows[limit - 1].idx) if len(rows) > limit else None
    next_query = urlencode({**request.args.to_dict(), "after": next_after}) if next_after is not None else ""
    return page("search.html", items=items, args=request.args, next_after=next_after, next_query=next_query)


@bp.get("/documents/<doc_id>")
@auditor_page
def timeline(auditor: Auditor, doc_id: str) -> str:
    """Every entry about the document, from submission to its last status, each with its proof."""
    _signed, checkpoint = _latest_checkpoint()
    with services().db.read() as conn:
        found = conn.execute(
            sa.select(audit_entries.c.idx, audit_entries.c.body)
            .join(audit_search, audit_search.c.idx == audit_entries.c.idx)
            .where(audit_search.c.document == doc_id)
            .order_by(audit_entries.c.idx)
        ).all()
        tree = StoredTree(conn)
        rows = [
            {
                "index": int(r.idx),
                "entry": json.loads(bytes(r.body)),
                "proof": _proof_status(tree, int(r.idx), bytes(r.body), checkpoint),
            }
            for r in found
        ]
    record_read(auditor, "auditor.timeline", f"workbench document {doc_id}")
    return page("timeline.html", rows=rows, doc_id=doc_id, checkpoint_size=checkpoint.size)


@bp.get("/documents/<doc_id>/evidence")
@auditor_page
def evidence_download(auditor: Auditor, doc_id: str) -> Response:
    """The same package as ``GET /v1/documents/{id}/evidence``, for the auditor's browser session."""
    return evidence_package(doc_id, auditor, "workbench")


@bp.get("/checkpoint")
@auditor_page
def checkpoint(auditor: Auditor) -> str:
    """The latest checkpoint, and whether the stored tree matches it and the one before it."""
    svc = services()
    signed, current = _latest_checkpoint()
    with svc.db.read() as conn:
        tree = StoredTree(conn)
        consistent = root_hash(tree, current.size) == current.root
        previous = conn.execute(
            sa.select(audit_checkpoints.c.note)
            .where(audit_checkpoints.c.size < current.size)
            .order_by(audit_checkpoints.c.size.desc())
            .limit(1)
        ).scalar_one_or_none()
        if previous is not None and consistent:
            older = open_checkpoint(previous, svc.ring.checkpoint_verifier)
            proof = consistency_path(tree, older.size, current.size)
            consistent = verify_consistency(older.size, current.size, older.root, current.root, proof)
    record_read(auditor, "auditor.checkpoint", "workbench checkpoint")
    signed_at = datetime.fromtimestamp(signed.created_us / 1e6, UTC).astimezone(LOCAL).isoformat(timespec="seconds")
    return page(
        "checkpoint.html",
        note=signed.note,
        size=current.size,
        consistent=consistent,
        vkey=svc.checkpoints.vkey,
        vkeys=svc.checkpoints.vkeys,
        signed_at=signed_at,
    )


def _period() -> tuple[str, str, datetime, datetime]:
    """The form's dates (a plain ``from``/``to`` is whole days in Vietnam) and the bounds they mean."""
    now = datetime.now(UTC)
    since, until = requested_period(now)
    start = request.args.get("from") or since.astimezone(LOCAL).date().isoformat()
    end = request.args.get("to") or now.astimezone(LOCAL).date().isoformat()
    return start, end, since, until


def _statistics(auditor: Auditor, what: str) -> tuple[str, str, list[AgencyFigures]]:
    start, end, since, until = _period()
    rows = services().statistics.figures(since, until, datetime.now(UTC))
    record_read(auditor, "auditor.statistics", f"workbench {what} {start}..{end}")
    return start, end, rows


@bp.get("/statistics")
@auditor_page
def statistics(auditor: Auditor) -> str:
    start, end, rows = _statistics(auditor, "page")
    top = max([1, *(r.received for r in rows)])
    return page("statistics.html", rows=rows, fields=FIELDS[1:8], start=start, end=end, top=top)


@bp.get("/statistics.csv")
@auditor_page
def statistics_csv(auditor: Auditor) -> Response:
    start, end, rows = _statistics(auditor, "csv")
    response = Response(as_csv(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="statistics-{start}-{end}.csv"'
    return response


@bp.get("/export")
@auditor_page
def export(auditor: Auditor) -> str:
    start, end, _since, _until = _period()
    return page("export.html", start=start, end=end)


@bp.post("/export.zip")
@auditor_page
def export_bundle_download(auditor: Auditor) -> Response:
    """A POST with the session's CSRF token: another site cannot start a whole-log export in an auditor's name."""
    check_csrf()
    bundle, first, last = export_requested_range()
    record_read(auditor, "auditor.export", f"workbench entries {first}..{last}")
    return zip_download(bundle, f"audit-{first}-{last}.zip")
