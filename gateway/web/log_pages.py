"""The log's own pages: the latest checkpoint (is the stored tree the one that was signed?) and the export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Response

from gateway.api.auditors import Auditor, export_requested_range, record_read, zip_download
from gateway.audit.checkpoint import open_checkpoint, split_note
from gateway.audit.log import StoredTree
from gateway.audit.merkle import consistency_path, root_hash, verify_consistency
from gateway.audit.witnessing import cosigned_note
from gateway.citizen.dossier import LOCAL
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.tables import audit_checkpoints
from gateway.web.blueprint import auditor_page, bp, check_csrf, page
from gateway.web.documents import latest_checkpoint
from gateway.web.periods import chosen_period


@bp.get("/checkpoint")
@auditor_page
def checkpoint(auditor: Auditor) -> str:
    """The latest checkpoint, and whether the stored tree matches it and the one before it."""
    svc = services()
    signed, current = latest_checkpoint()
    previous_size = None
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
            previous_size = older.size
            proof = consistency_path(tree, older.size, current.size)
            consistent = verify_consistency(older.size, current.size, older.root, current.root, proof)
        note = cosigned_note(conn, signed)
    witnessing = witness_verdict(note)
    record_read(auditor, "auditor.checkpoint", "workbench checkpoint")
    signed_at = datetime.fromtimestamp(signed.created_us / 1e6, UTC).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")
    return page(
        "checkpoint.html",
        note=note,
        witnessing=witnessing,
        size=current.size,
        origin=current.origin,
        root=current.root.hex(),
        previous_size=previous_size,
        consistent=consistent,
        vkey=svc.checkpoints.vkey,
        vkeys=svc.checkpoints.vkeys,
        signed_at=signed_at,
    )


@dataclass(frozen=True)
class WitnessVerdict:
    """What the page says about the checkpoint's witnesses: ``state`` ok / bad / unpolicied / none."""

    state: str
    cosigned_by: tuple[str, ...]
    reason: str = ""


def witness_verdict(note: str) -> WitnessVerdict:
    """The configured policy's decision on ``note`` (C2SP tlog-policy), as an auditor's verifier makes it.

    Without a policy the page still names the configured witnesses whose cosignatures verify, and
    says that no quorum is required; with none configured, that the log is on its operator's word."""
    svc = services()
    if svc.witness_policy is not None:
        policy = svc.witness_policy
        try:
            return WitnessVerdict("ok", policy.accept(note).cosigned_by)
        except Refusal as refusal:
            try:
                found = policy.cosigners(note)
            except Refusal:  # a cosignature that does not verify: the reason above says so
                found = ()
            return WitnessVerdict("bad", found, refusal.reason)
    if not svc.witnesses.witnesses:
        return WitnessVerdict("none", ())
    body, lines = split_note(note)
    try:
        signed = tuple(
            w.name for w in svc.witnesses.witnesses if any(w.verifier.timestamp(body, x) is not None for x in lines)
        )
    except Refusal as refusal:
        return WitnessVerdict("bad", (), refusal.reason)
    return WitnessVerdict("unpolicied", signed)


@bp.get("/export")
@auditor_page
def export(auditor: Auditor) -> str:
    period = chosen_period("month")
    return page("export.html", period=period)


@bp.post("/export.zip")
@auditor_page
def export_bundle_download(auditor: Auditor) -> Response:
    """A POST with the session's CSRF token: another site cannot start a whole-log export in an auditor's name."""
    check_csrf()
    bundle, first, last = export_requested_range()
    record_read(auditor, "auditor.export", f"workbench entries {first}..{last}")
    return zip_download(bundle, f"audit-{first}-{last}.zip")
