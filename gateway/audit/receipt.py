"""A document's receipt: its audit entries, each with an inclusion proof against a signed checkpoint.

Sender and recipient keep it; ``gateway audit verify-receipt`` checks it offline with nothing but the
log's verifier key, taking size and root only from the checkpoint whose signature verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.checkpoint import AnyOfVerifiers, NoteVerifier, open_checkpoint
from gateway.audit.checkpoints import SignedCheckpoint
from gateway.audit.log import StoredTree
from gateway.audit.merkle import hash_leaf, inclusion_path, verify_inclusion
from gateway.audit.witness_policy import WitnessPolicy
from gateway.audit.witnessing import cosigned_note
from gateway.json_input import parse_json
from gateway.policy import Refusal
from gateway.store.tables import audit_entries

FORMAT = "interconnect-gateway-receipt/1"


def build_receipt(
    conn: Connection, document: str, checkpoint: SignedCheckpoint, *, hide: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Every entry about ``document`` but those by or about the agencies in ``hide``: a recipient's
    receipt leaves out its co-recipients' deliveries, statuses and endpoints (issue 10, finding 8).
    Each entry carries its own proof, so a receipt of some of the entries verifies all the same."""
    rows = conn.execute(
        sa.select(audit_entries.c.idx, audit_entries.c.body)
        .where(audit_entries.c.document == document, audit_entries.c.idx < checkpoint.size)
        .order_by(audit_entries.c.idx)
    ).all()
    if hide:
        rows = [r for r in rows if not {json.loads(r.body).get(k) for k in ("recipient", "actor")} & hide]
    return receipt_of(conn, document, [(int(r.idx), bytes(r.body)) for r in rows], checkpoint)


def receipt_of(
    conn: Connection, document: str | None, rows: list[tuple[int, bytes]], checkpoint: SignedCheckpoint
) -> dict[str, Any]:
    """Entries (index, body) with their inclusion proofs: a document's, or one entry an auditor downloads."""
    tree = StoredTree(conn).prefetch(lambda t: [inclusion_path(t, index, checkpoint.size) for index, _ in rows])
    return {
        "format": FORMAT,
        "document": document,
        "checkpoint": cosigned_note(conn, checkpoint),
        "entries": [
            {
                "index": index,
                "entry": base64.b64encode(body).decode(),
                "proof": [base64.b64encode(h).decode() for h in inclusion_path(tree, index, checkpoint.size)],
            }
            for index, body in rows
        ],
    }


def verify_receipt(
    receipt: Any, verifier: NoteVerifier | AnyOfVerifiers | None, policy: WitnessPolicy | None = None
) -> dict[str, Any]:
    """A report with ``verdict`` valid/invalid and, when invalid, the first bad part.  With ``policy``
    the checkpoint must be signed by one of its logs and cosigned by its quorum of witnesses."""
    report: dict[str, Any] = {"verdict": "invalid"}
    try:
        if not isinstance(receipt, dict) or receipt.get("format") != FORMAT:
            raise Refusal("receipt-invalid", f"not a receipt ({FORMAT})")
        note = str(receipt.get("checkpoint", ""))
        if policy is not None:
            accepted = policy.accept(note)
            checkpoint = accepted.checkpoint
            report.update(cosigned_by=list(accepted.cosigned_by))
        elif verifier is not None:
            checkpoint = open_checkpoint(note, verifier)
        else:
            raise ValueError("a receipt is checked against the log's verifier key or a witness policy")
        report.update(checkpoint_size=checkpoint.size, origin=checkpoint.origin)
        entries = receipt.get("entries")
        if not isinstance(entries, list) or not entries:
            raise Refusal("receipt-invalid", "the receipt holds no entries")
        events = []
        for n, item in enumerate(entries):
            try:
                index, body = item["index"], base64.b64decode(item["entry"], validate=True)
                proof = [base64.b64decode(p, validate=True) for p in item["proof"]]
            except (KeyError, TypeError, ValueError, binascii.Error):
                raise Refusal("receipt-invalid", f"entry #{n} is malformed") from None
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:  # not "15", 15.9 or 1e999
                raise Refusal("receipt-invalid", f"entry #{n}'s index is not a whole number")
            if not verify_inclusion(index, checkpoint.size, hash_leaf(body), proof, checkpoint.root):
                raise Refusal("receipt-invalid", f"entry at index {index} is not in the signed log")
            try:
                entry = parse_json(body)
            except ValueError:
                raise Refusal("receipt-invalid", f"entry at index {index} is not JSON") from None
            if (
                not isinstance(entry, dict)
                or entry.get("index") != index
                or entry.get("document") != receipt.get("document")
            ):
                raise Refusal("receipt-invalid", f"entry at index {index} is about another index or document")
            events.append(f"{index} {entry.get('time')} {entry.get('event')} {entry.get('outcome')}")
    except Refusal as refusal:
        report.update(code=refusal.code, reason=refusal.reason)
        return report
    report.update(verdict="valid", document=receipt["document"], entries=events)
    return report
