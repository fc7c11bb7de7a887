"""Which signing certificates chain to a configured trust anchor — decided once per certificate.

Chain building is the expensive part of verifying a signature (DESIGN.md §8: signxml re-reads its
CA file on every call and halves throughput).  A positive decision is cached by certificate
fingerprint until the certificate (or its issuer) expires; a different set of anchors is a new
:class:`TrustStore`, so a trust change can never reuse an old decision.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509 import verification as xv

from gateway.policy import Refusal
from gateway.trust.keypolicy import check_public_key_strength
from gateway.trust.pki import fingerprint


def check_key_strength(cert: x509.Certificate) -> None:
    check_public_key_strength(cert.public_key())


def _require_signing_usage(_policy: object, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        raise ValueError("certificate KeyUsage allows neither digitalSignature nor nonRepudiation")


class TrustStore:
    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        if not anchors:
            raise ValueError("a trust store needs at least one anchor; an empty one would trust nothing")
        self.anchors = tuple(anchors)
        self.generation = hashlib.sha256("".join(sorted(fingerprint(a) for a in anchors)).encode()).hexdigest()
        self._store = xv.Store(list(anchors))
        self._decisions: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def verify(
        self, cert: x509.Certificate, intermediates: Sequence[x509.Certificate] = (), *, at: datetime | None = None
    ) -> None:
        """Raise :class:`Refusal` unless ``cert`` is a valid signing certificate chaining to an anchor at ``at``."""
        now = at or datetime.now(UTC)
        fp = fingerprint(cert)
        with self._lock:
            valid_until = self._decisions.get(fp)
        if valid_until is not None and now < valid_until and now >= cert.not_valid_before_utc:
            return
        check_key_strength(cert)
        if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
            raise Refusal(
                "certificate-expired",
                f"certificate {cert.subject.rfc4514_string()} is valid from {cert.not_valid_before_utc:%Y-%m-%d} "
                f"to {cert.not_valid_after_utc:%Y-%m-%d}",
            )
        ee_policy = xv.ExtensionPolicy.permit_all().require_present(
            x509.KeyUsage, xv.Criticality.AGNOSTIC, _require_signing_usage
        )
        verifier = (
            xv.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ee_policy=ee_policy, ca_policy=xv.ExtensionPolicy.webpki_defaults_ca())
            .build_client_verifier()
        )
        try:
            result = verifier.verify(cert, list(intermediates))
        except xv.VerificationError as exc:
            raise Refusal("certificate-untrusted", f"certificate does not chain to a trust anchor: {exc}") from None
        expires = min(c.not_valid_after_utc for c in result.chain)
        with self._lock:
            self._decisions[fp] = expires
