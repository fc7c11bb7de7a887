"""The audit trail: every state change and every refusal, appended in the same transaction."""

from gateway.audit.log import AuditBatch, AuditEvent, AuditLog

__all__ = ["AuditBatch", "AuditEvent", "AuditLog"]
