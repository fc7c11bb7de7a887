"""The audit log's public face: the latest signed checkpoint and proofs against it.

Like a Certificate Transparency log these reveal only hashes, so they need no login; entries
themselves are only ever handed out in receipts (to a document's parties) and to auditors.
"""

from __future__ import annotations

import base64

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from gateway.api.paging import whole_number
from gateway.audit.witnessing import cosigned_note
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.helpers import as_utc
from gateway.store.tables import audit_checkpoints, checkpoint_timestamps, trust_evidence

bp = Blueprint("audit", __name__)


def _int_arg(name: str) -> int:
    try:
        value = whole_number(request.args.get(name, ""))
    except ValueError:
        raise Refusal("invalid-request", f"{name} must be a whole number") from None
    if not 0 <= value < 2**63:
        raise Refusal("invalid-request", f"{name} is out of range")
    return value


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(i).decode() for i in items]


@bp.get("/v1/audit/checkpoint")
def checkpoint() -> Response:
    svc = services()
    signed = svc.checkpoints.refresh()
    with svc.db.read() as conn:  # the witnesses' cosignatures after the log's own signature (C2SP tlog-witness)
        note = cosigned_note(conn, signed)
    response = Response(note, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/v1/audit/checkpoint/timestamp")
def checkpoint_timestamp() -> Response:
    """The latest timestamped checkpoint and its RFC 3161 token (over the SHA-256 of the note's UTF-8
    bytes): proof that the log had this size and root no later than ``gen_time``."""
    with services().db.read() as conn:
        row = conn.execute(
            sa.select(checkpoint_timestamps.c.size, checkpoint_timestamps.c.gen_time, trust_evidence.c.content)
            .join(trust_evidence, trust_evidence.c.sha256 == checkpoint_timestamps.c.token)
            .order_by(checkpoint_timestamps.c.size.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            raise Refusal("not-found", "no checkpoint has been timestamped yet; they are, at least once a minute")
        note = conn.execute(
            sa.select(audit_checkpoints.c.note).where(audit_checkpoints.c.size == row.size)
        ).scalar_one()
    return jsonify(
        {
            "size": int(row.size),
            "note": note,
            "gen_time": as_utc(row.gen_time).isoformat(),
            "covers": "SHA-256 of the note's UTF-8 bytes",
            "token": base64.b64encode(bytes(row.content)).decode(),
        }
    )


@bp.get("/v1/audit/proof/inclusion")
def inclusion() -> Response:
    index, size = _int_arg("index"), _int_arg("size")
    svc = services()
    with svc.db.read() as conn:
        proof = svc.checkpoints.inclusion(conn, index, size)
    return jsonify({"index": index, "size": size, "proof": _b64(proof)})


@bp.get("/v1/audit/proof/consistency")
def consistency() -> Response:
    first, second = _int_arg("from"), _int_arg("to")
    svc = services()
    with svc.db.read() as conn:
        proof = svc.checkpoints.consistency(conn, first, second)
    return jsonify({"from": first, "to": second, "proof": _b64(proof)})
