"""The audit trail: every state change and every refusal, appended in the same transaction."""

from gateway.audit.log import AuditEvent, AuditLog

__all__ = ["AuditEvent", "AuditLog"]
