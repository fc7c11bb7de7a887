"""Audit events about a document already stored: one place that copies its identifying fields."""

from __future__ import annotations

from typing import Any

from gateway.audit import AuditEvent


def document_event(
    doc: Any, event: str, *, actor: str, recipient: str | None = None, outcome: str = "ok", reason: str | None = None
) -> AuditEvent:
    """``doc`` is a row of the documents table."""
    return AuditEvent(
        event=event,
        outcome=outcome,
        actor=actor,
        document=doc.id,
        document_id=doc.document_id,
        sender=doc.sender,
        recipient=recipient,
        sha256=doc.sha256,
        reason=reason,
    )
