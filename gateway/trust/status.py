"""What a revocation status source said about one certificate, in one shape for OCSP and CRLs.

The gateway records *why* it believed a signer's certificate was (not) revoked at signing time, so the
decision can be re-checked offline years later (e.g. when a signed edXML document is contested).  That
needs the verdict together with the exact bytes it was derived from: :attr:`CertStatus.evidence` is the
DER OCSP response (RFC 6960 §4.2.1) or CRL (RFC 5280 §5.1) as received, whose signature a later auditor
can verify again, and :attr:`CertStatus.evidence_sha256` is the short handle the audit log refers to it by.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

State = Literal["good", "revoked", "unknown"]
Source = Literal["ocsp", "crl"]


def now_utc() -> datetime:
    """The current time as an aware UTC datetime: every status comparison is done in UTC so that a
    naive local time can never shift a freshness window by the server's offset."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class CertStatus:
    """A verified status answer.

    Only :mod:`gateway.trust.ocsp` and :mod:`gateway.trust.crl` build these, after checking the signer
    and the freshness window, so holding one means "an authorised source said this, recently enough".
    ``produced_at`` is OCSP's producedAt (RFC 6960 §4.2.1); for a CRL it is its thisUpdate, which
    cryptography calls ``last_update`` (RFC 5280 §5.1.2.4).  ``reason`` is the RFC 5280 §5.3.1 reason
    name as :class:`cryptography.x509.ReasonFlags` spells it (``"keyCompromise"``), or ``None`` when the
    source gave none or gave ``unspecified`` — §5.3.1 treats the two alike.
    """

    state: State
    source: Source
    url: str
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    revoked_at: datetime | None
    reason: str | None
    evidence: bytes
    responder: str

    def __post_init__(self) -> None:
        # Naive datetimes compare wrongly with aware ones (or raise later, far from the cause).
        for name in ("this_update", "next_update", "produced_at", "revoked_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"CertStatus.{name} must be an aware datetime")

    @property
    def evidence_sha256(self) -> str:
        """Lower-case hex SHA-256 of :attr:`evidence`: how the audit log names the bytes it kept."""
        return hashlib.sha256(self.evidence).hexdigest()
