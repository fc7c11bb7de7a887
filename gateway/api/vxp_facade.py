"""The national SDK's endpoints under ``/vxp/``: a system built on SDKVXP points ``service.endpoint``
at ``GATEWAY_PUBLIC_URL/vxp`` and keeps working, with the ``systemid``/``secret`` that
``gateway agency vxp-credentials CODE`` issued it.

Every call's signed headers are checked (gateway.vxp.protocol.verify_call: HMAC over the sign-header
as sent, every signed header equal to the one sent, the timestamp within
``GATEWAY_VXP_WINDOW_SECONDS``); a call that changes something (sendEdoc, updateStatus) is refused
when its signature was seen before.  ``sendEdoc`` goes through the same submission path as
``POST /v1/documents`` (and ``/v1/status`` for ``messagetype: status``); the lists, getEdoc,
downloadEdoc and updateStatus map to the caller's inbox.  Every refusal is the SDK's ``FAIL``
answer with a code and a reason (HTTP 200, as the SDK reads only the body), never a 500; refusals
of callers who proved nothing are counted and summarised like every unauthenticated refusal.

Field names and shapes follow the SDK's ``KnobstickServiceImp`` and ``AgencyServiceImp`` (see
gateway.vxp.protocol for the sources).  The public code does not show the axis's time format for
``created_time``; ``dd/MM/yyyy HH:mm:ss`` in Vietnam's time is used.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.api.auth import refused_unauthenticated
from gateway.api.documents import body_within_limit, within_rate
from gateway.audit.log import AuditEvent
from gateway.citizen.dossier import LOCAL
from gateway.observability import count_document
from gateway.policy import Refusal
from gateway.routing import inbox
from gateway.services import services
from gateway.store.blob_io import blob_pieces
from gateway.store.tables import documents, routes
from gateway.vxp.client import VIETNAM
from gateway.vxp.credentials import Credential
from gateway.vxp.protocol import SERVICE_TYPE, CallRefused, file_hash_matches, verify_call, wire_text

bp = Blueprint("vxp", __name__, url_prefix="/vxp")
# Signed names only calls that change something carry (sendEdoc's hash-file, updateStatus's status).
CHANGING_FIELDS = frozenset({"hash-file", "status", "description"})
R = TypeVar("R")


class _Fail(Exception):
    """A FAIL answer; ``audited`` when what raised it already wrote its audit entry."""

    def __init__(self, code: str, desc: str, *, audited: bool = False) -> None:
        super().__init__(desc)
        self.code, self.desc, self.audited = code, desc, audited


def _answer(**fields: Any) -> Response:
    return jsonify({"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **fields})


@bp.errorhandler(_Fail)
def _failed(fail: _Fail) -> Response:
    return jsonify({"status": "FAIL", "ErrorCode": fail.code, "ErrorDesc": fail.desc[:1000]})


@bp.errorhandler(Refusal)
def _refused(refusal: Refusal) -> Response:
    return _failed(_Fail(refusal.code, refusal.reason))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:  # 413 too large, 405 …: still the SDK's FAIL
    return _failed(_Fail(str(exc.code or 400), exc.description or exc.name))


def _caller(*, changes: bool) -> tuple[str, dict[str, str]]:
    """The agency whose systemid signed this call, and the call's signed fields; refuses (FAIL) otherwise.

    Only signed headers are read: a header added outside the signature changes nothing."""
    svc = services()
    now = datetime.now(UTC)
    window = timedelta(seconds=svc.config.vxp_window_seconds)

    looked_up: list[Credential] = []  # one read and one unseal per call: verify_call asks once

    def secret_for(systemid: str) -> str | None:
        found = svc.vxp_credentials.lookup(systemid)
        if found is None:
            return None
        looked_up.append(found)
        return found.secret

    headers = {k: wire_text(v) if k.lower().startswith("xroadvnpt-") else v for k, v in request.headers.items()}
    try:
        call = verify_call(headers, secret_for, now=now, zone=VIETNAM, window=window)
    except CallRefused as refused:
        refused_unauthenticated("vxp.refused", Refusal("vxp-signature", refused.reason))
        raise _Fail(refused.code, refused.reason) from None
    credential = looked_up[0]
    agency = svc.agencies.agency(credential.agency)
    if agency is None or not agency.enabled:
        _audited_fail(credential.agency, "403", f"agency {credential.agency} is not registered or is disabled")
    if changes and not svc.state.first_use("vxp-signature", call.signature, int((now + 2 * window).timestamp())):
        _audited_fail(credential.agency, "401", "this signed call was already received; sign each call afresh")
    if not changes and CHANGING_FIELDS & set(call.fields):
        # The SDK signs neither the method nor the path: a call signed to change something is not
        # also a read (review: updateStatus headers replayed to getEdoc returned the document).
        _audited_fail(credential.agency, "401", "these signed headers belong to a call that changes something")
    return credential.agency, call.fields


def _audited_fail(agency: str, code: str, reason: str) -> NoReturn:
    svc = services()
    svc.audit.refused(svc.db, "vxp.refused", Refusal("vxp-" + code, reason), actor=agency)
    raise _Fail(code, reason, audited=True)


def _time(moment: datetime | None) -> str:
    return moment.astimezone(LOCAL).strftime("%d/%m/%Y %H:%M:%S") if moment else ""


def _kind(fields: dict[str, str]) -> str:
    wanted = fields.get("messagetype", "edoc")
    if wanted not in ("edoc", "status"):
        raise _Fail("400", "messagetype is edoc or status")
    return "status" if wanted == "status" else "document"


def signed_call(changes: bool = False) -> Callable[[Callable[[str, dict[str, str]], R]], Callable[[], R]]:
    """The view runs as the signing agency; what it refuses is audited once, naming that agency."""

    def decorate(view: Callable[[str, dict[str, str]], R]) -> Callable[[], R]:
        @wraps(view)
        def wrapper() -> R:
            agency, fields = _caller(changes=changes)
            g.agency = agency
            try:
                return view(agency, fields)
            except _Fail as fail:
                if not fail.audited:
                    _audited_fail(agency, fail.code, fail.desc)
                raise
            except Refusal as refusal:  # from the inbox (not found, not visible): audited here
                _audited_fail(agency, refusal.code, refusal.reason)

        return wrapper

    return decorate


@bp.post("/sendEdoc")
@signed_call(changes=True)
def send_edoc(agency: str, fields: dict[str, str]) -> Response:
    """As ``POST /v1/documents`` (or ``/v1/status``): the same rate limit, body limit, checks and audit."""
    svc = services()
    kind = _kind(fields)
    event = f"{kind}.refused"
    try:
        within_rate(event)
        body = body_within_limit(event)
    except Refusal as refusal:  # audited by those two
        raise _Fail(refusal.code, refusal.reason, audited=True) from None
    if fields.get("from", agency) != agency:  # as the axis answers it; the signed From decides anyway
        raise _Fail("403", f"from {fields['from'][:35]} is not this system's agency {agency}")
    data = body[:-2] if body.endswith(b"\r\n") else body  # the SDK writes the file, then CRLF
    if not file_hash_matches(fields.get("hash-file", ""), data):
        raise _Fail("400", "hash-file is not the SHA-256 of the file sent")
    submit = svc.submissions.submit_status if kind == "status" else svc.submissions.submit_document
    try:
        accepted = submit(agency, data)
    except Refusal as refusal:  # audited by the submission path
        count_document(kind, "refused", refusal.code)
        raise _Fail(refusal.code, refusal.reason, audited=True) from None
    count_document(kind, "duplicate" if accepted.duplicate else "accepted", "")
    return _answer(DocId=accepted.id)


def _waiting(agency: str, kind: str) -> Any:
    """The caller's undelivered documents (or status messages): one condition for the list and the counts."""
    return sa.and_(routes.c.recipient == agency, routes.c.state == "pending", documents.c.kind == kind)


def _pending(agency: str, kind: str) -> list[Any]:
    with services().db.read() as conn:
        return list(
            conn.execute(
                sa.select(documents)
                .join(routes, routes.c.document == documents.c.id)
                .where(_waiting(agency, kind))
                .order_by(routes.c.id)
                .limit(inbox.MAX_PAGE)
            )
        )


def _count(agency: str, kind: str) -> int:
    """All of them, not the first page's (a count capped at the list's page was wrong past 500)."""
    with services().db.read() as conn:
        query = sa.select(sa.func.count()).select_from(routes.join(documents, routes.c.document == documents.c.id))
        return int(conn.execute(query.where(_waiting(agency, kind))).scalar_one())


@bp.post("/getReceivedEdocList")
@signed_call()
def received_list(agency: str, fields: dict[str, str]) -> Response:
    kind = _kind(fields)
    items = [
        {
            "docId": d.id,
            "serviceType": SERVICE_TYPE,
            "messageType": "status" if kind == "status" else "edoc",
            "created_time": _time(d.received_at),
            "updated_time": _time(d.received_at),
            "from": d.sender,
            "to": agency,
            "status": "inbox",
            "status_desc": "",
        }
        for d in _pending(agency, kind)
    ]
    return _answer(data=items)


@bp.post("/countReceiveEdoc")
@signed_call()
def count_received(agency: str, fields: dict[str, str]) -> Response:
    return _answer(count=_count(agency, "document"))


@bp.post("/countReceiveStatus")
@signed_call()
def count_statuses(agency: str, fields: dict[str, str]) -> Response:
    return _answer(count=_count(agency, "status"))


def _content(agency: str, doc_id: str) -> bytes:
    with services().db.read() as conn:
        sha256, _size = inbox.document_content(conn, agency, doc_id)
        return b"".join(blob_pieces(conn, sha256))


@bp.post("/getEdoc")
@signed_call()
def get_edoc(agency: str, fields: dict[str, str]) -> Response:
    return _answer(data=base64.b64encode(_content(agency, fields.get("docId", ""))).decode())


@bp.get("/downloadEdoc")
@signed_call()
def download_edoc(agency: str, fields: dict[str, str]) -> Response:
    return Response(_content(agency, fields.get("docId", "")), mimetype="application/octet-stream")


@bp.post("/updateStatus")
@signed_call(changes=True)
def update_status(agency: str, fields: dict[str, str]) -> Response:
    """``done`` or ``fail``: the system has the document (acknowledged, as ``POST /v1/inbox/{id}/ack``),
    and what it said is audited; ``processing`` is audited only.  Official edXML status messages
    (01…06) travel as ``sendEdoc`` with ``messagetype: status``."""
    svc = services()
    doc_id, status = fields.get("docId", ""), fields.get("status", "")
    if status not in ("done", "fail", "processing"):
        raise _Fail("400", "status is done, fail or processing")
    with svc.db.write() as conn:
        if status != "processing":
            inbox.acknowledge(conn, svc.audit, agency, doc_id)
        else:
            inbox.document_view(conn, agency, doc_id)  # only the caller's own documents
        svc.audit.append(
            conn,
            AuditEvent(
                event="vxp.status-reported",
                outcome="ok",
                actor=agency,
                document=doc_id,
                recipient=agency,
                reason=f"{status}: {fields.get('description', '')}"[:500],
            ),
        )
    return _answer()


@bp.post("/getSentEdocList")
@signed_call()
def sent_list(agency: str, fields: dict[str, str]) -> Response:
    kind = _kind(fields)
    with services().db.read() as conn:
        rows = conn.execute(
            sa.select(documents, routes.c.recipient, routes.c.state, routes.c.acknowledged_at)
            .join(routes, routes.c.document == documents.c.id)
            .where(documents.c.sender == agency, documents.c.kind == kind)
            .order_by(documents.c.received_at.desc())
            .limit(inbox.MAX_PAGE)
        ).all()
    items = [
        {
            "serviceType": SERVICE_TYPE,
            "receiverDocId": r.id,
            "toCode": r.recipient,
            "receiveStatus": "done" if r.state == "acknowledged" else "inbox",
            "title": r.subject or "",
            "messageType": "status" if kind == "status" else "edoc",
            "notation": r.document_id,
            "receivedTime": _time(r.acknowledged_at),
            "sentTime": _time(r.received_at),
            "sendStatus": "done",
            "sendStatusDesc": "",
            "senderDocId": r.id,
            "fromCode": agency,
            "receiveStatusDesc": r.state,
        }
        for r in rows
    ]
    return _answer(data=items)


@bp.post("/getAgenciesList")
@signed_call()
def agencies_list(agency: str, fields: dict[str, str]) -> Response:
    with services().db.read() as conn:
        found = services().registry.all(conn)
    items = [
        {"code": a.code, "id": n, "mail": "", "name": a.name, "pid": a.organization_in_charge, "oldCode": ""}
        for n, a in enumerate(found, 1)
        if a.enabled
    ]
    return _answer(data=items)
