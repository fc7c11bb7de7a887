"""``GET /v1/documents/{id}/evidence``: the document's evidence package, for its sender, its
recipients and auditors (whose reads are audited like every other)."""

from __future__ import annotations

from flask import Blueprint, Response, g

from gateway.api.auditors import Auditor, authenticated_auditor, record_read
from gateway.api.auth import authenticated_agency, bearer_token
from gateway.identity.jws import parse_compact
from gateway.routing import inbox
from gateway.services import services
from gateway.trust.evidence import MIMETYPE, build_package
from gateway.trust.evidence_store import collect_evidence

bp = Blueprint("evidence", __name__)


def _caller() -> Auditor | None:
    """An auditor, or None for an agency (whose access is then the document's visibility rule)."""
    svc = services()
    token = bearer_token("invalid-token")
    if parse_compact(token, "invalid-token").header.get("kid") == svc.tokens.kid:
        g.agency = authenticated_agency()
        return Auditor(g.agency, g.agency) if g.agency in svc.config.auditor_identities else None
    return authenticated_auditor()


def evidence_download(doc_id: str, auditor: Auditor | None, where: str) -> Response:
    """The package for an auditor (the read audited) or, with ``auditor`` None, for the agency in ``g``."""
    svc = services()
    checkpoint = svc.witnessed_checkpoint()
    with svc.db.read() as conn:
        if auditor is None:
            inbox.document_view(conn, g.agency, doc_id)  # sender and recipients only: 404 for anyone else
        parts = collect_evidence(conn, doc_id, checkpoint, svc.checkpoints.vkey)
    if auditor is not None:
        record_read(auditor, "auditor.evidence-exported", f"{where} document {doc_id}")
    response = Response(build_package(parts), mimetype=MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{doc_id}.evidence.asice"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/v1/documents/<doc_id>/evidence")
def get_evidence(doc_id: str) -> Response:
    return evidence_download(doc_id, _caller(), "api")
