"""Submitting documents and status messages, and reading what the caller sent or received."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.api.auth import require_agency
from gateway.api.paging import page_parameters
from gateway.audit.receipt import build_receipt
from gateway.observability import count_document
from gateway.policy import RateLimited, Refusal
from gateway.routing import inbox
from gateway.routing.submission import Accepted
from gateway.services import services
from gateway.store.blob_io import blob_pieces

bp = Blueprint("documents", __name__)


def body_within_limit(event: str) -> bytes:
    """The request body, refused (and audited) when it is larger than the limit: before reading it when
    Content-Length says so, while reading it for a chunked body."""
    svc = services()
    limit = svc.config.max_document_bytes
    refusal = None
    if request.content_length is not None and request.content_length > limit:
        refusal = Refusal("too-large", f"body is {request.content_length} bytes; the limit is {limit}")
    elif request.content_length is not None:
        # Known length: read it in one call.  From the front's in-memory input that is the very bytes
        # object the front built (no copy); werkzeug's get_data would assemble a second and a third.
        body: bytes = request.environ["wsgi.input"].read(request.content_length)
        if len(body) == request.content_length:
            return body
        refusal = Refusal("invalid-request", f"the body ended after {len(body)} of {request.content_length} bytes")
    else:
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            refusal = Refusal("too-large", f"body is larger than the limit of {limit} bytes")
        else:
            if len(body) <= limit:
                return body
            refusal = Refusal("too-large", f"body is {len(body)} bytes; the limit is {limit}")
    svc.audit.refused(svc.db, event, refusal, actor=g.agency, sender=g.agency)
    raise refusal


def within_rate(event: str) -> None:
    """Per-agency submissions a minute (``GATEWAY_AGENCY_SUBMISSIONS_PER_MINUTE``): shared through Redis when
    configured, else counted by each server process (no write on the request path; see ProcessRateLimiter)."""
    svc = services()
    per_minute = svc.config.agency_submissions_per_minute
    decision = svc.submission_limiter.hit(f"submissions:{g.agency}", per_minute, 60)
    if not decision.allowed:
        refusal = RateLimited(f"at most {per_minute} submissions a minute per agency; slow down", decision.retry_after)
        svc.audit.refused(svc.db, event, refusal, actor=g.agency, sender=g.agency)
        raise refusal


def _submit(kind: str, submit: Callable[[str, bytes], Accepted]) -> Response:
    try:
        within_rate(f"{kind}.refused")
        accepted = submit(g.agency, body_within_limit(f"{kind}.refused"))
    except Refusal as refusal:
        count_document(kind, "refused", refusal.code)
        raise
    count_document(kind, "duplicate" if accepted.duplicate else "accepted", "")
    response = jsonify(
        {
            "id": accepted.id,
            "kind": accepted.kind,
            "document_id": accepted.document_id,
            "sha256": accepted.sha256,
            "audit_index": accepted.audit_index,
            "received_at": accepted.received_at.isoformat(),
            "recipients": list(accepted.recipients),
            "duplicate": accepted.duplicate,
            "links": {"self": f"/v1/documents/{accepted.id}", "seal": f"/v1/documents/{accepted.id}/seal"},
        }
    )
    response.status_code = 200 if accepted.duplicate else 202
    response.headers["Location"] = f"/v1/documents/{accepted.id}"
    return response


@bp.post("/v1/documents")
@require_agency
def submit_document() -> Response:
    return _submit("document", services().submissions.submit_document)


@bp.post("/v1/status")
@require_agency
def submit_status() -> Response:
    return _submit("status", services().submissions.submit_status)


@bp.get("/v1/documents/<doc_id>")
@require_agency
def get_document(doc_id: str) -> Response:
    with services().db.read() as conn:
        return jsonify(inbox.document_view(conn, g.agency, doc_id))


def _xml(body: bytes | Iterable[bytes], filename: str) -> Response:
    response = Response(body, mimetype="application/xml")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/v1/documents/<doc_id>/content")
@require_agency
def get_content(doc_id: str) -> Response:
    db = services().db
    with db.read() as conn:
        sha256, size = inbox.document_content(conn, g.agency, doc_id)

    def pieces() -> Generator[bytes, None, None]:  # a large document never whole in memory (issue 12)
        with db.read() as conn:
            yield from blob_pieces(conn, sha256)

    response = _xml(_Primed(pieces()), f"{doc_id}.edxml")
    response.content_length = size
    return response


class _Primed:
    """A response body whose first piece is read at once, inside the request: a database that is away
    is then a 503 problem, not a 200 whose body fails (review finding); the front reads the rest before
    it answers.  ``close`` ends the stream's read transaction even if the body is never read (HEAD)."""

    def __init__(self, stream: Generator[bytes, None, None]) -> None:
        self._stream = stream
        self._first = next(stream, b"")

    def __iter__(self) -> Iterator[bytes]:
        yield self._first
        yield from self._stream

    def close(self) -> None:
        self._stream.close()


@bp.get("/v1/documents/<doc_id>/seal")
@require_agency
def get_seal(doc_id: str) -> Response:
    with services().db.read() as conn:
        return _xml(inbox.document_seal(conn, g.agency, doc_id), f"{doc_id}.seal.xml")


@bp.get("/v1/inbox")
@require_agency
def list_inbox() -> Response:
    after, limit = page_parameters(default_limit=50, max_limit=inbox.MAX_PAGE)
    with services().db.read() as conn:
        return jsonify(inbox.list_pending(conn, g.agency, after, limit))


@bp.post("/v1/inbox/<doc_id>/ack")
@require_agency
def acknowledge(doc_id: str) -> Response:
    svc = services()
    with svc.db.write() as conn:
        return jsonify(inbox.acknowledge(conn, svc.audit, g.agency, doc_id))


@bp.get("/v1/documents/<doc_id>/receipt")
@require_agency
def get_receipt(doc_id: str) -> Response:
    """The document's audit entries with inclusion proofs against a signed checkpoint (sender and recipients only)."""
    svc = services()
    checkpoint = svc.witnessed_checkpoint()
    with svc.db.read() as conn:
        hidden = inbox.hidden_from(conn, g.agency, doc_id)  # the document's own visibility rule
        return jsonify(build_receipt(conn, doc_id, checkpoint, hide=hidden))
