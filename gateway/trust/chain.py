"""Which signing certificates chain to a configured trust anchor — decided once per certificate.

Chain building is the expensive part of verifying a signature (DESIGN.md §8: signxml re-reads its
CA file on every call and halves throughput).  A positive decision is cached by certificate
fingerprint until the certificate (or its issuer) expires; a different set of anchors is a new
:class:`TrustStore`, so a trust change can never reuse an old decision.

The end-entity rules are the signing profile of Circular 15/2025/TT-BKHCN and RFC 5280: a key that
may sign (digitalSignature or nonRepudiation), not a CA (a CA key signing documents defeats the
point of issuing end-entity certificates), and not a certificate whose extended key usage limits it
to TLS servers (a web server's key is not an official's signature).  They are checked on the
certificate itself before path building so that the refusal names the rule that failed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from gateway.policy import Refusal
from gateway.trust.keypolicy import check_public_key_strength
from gateway.trust.pki import fingerprint

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336
SIGNING_PURPOSES = frozenset(
    {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        DOCUMENT_SIGNING,
    }
)


def check_key_strength(cert: x509.Certificate) -> None:
    check_public_key_strength(cert.public_key())


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def check_end_entity(cert: x509.Certificate) -> None:
    """The signing-certificate profile: may sign, is not a CA, is not limited to TLS servers."""
    usage = _extension(cert, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not (usage.digital_signature or usage.content_commitment):
        raise Refusal(
            "certificate-usage", "the certificate's key usage allows neither digitalSignature nor nonRepudiation"
        )
    constraints = _extension(cert, x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise Refusal("certificate-usage", "a CA certificate (CA:TRUE) may not sign documents; use an end-entity one")
    purposes = _extension(cert, x509.ExtendedKeyUsage)
    if isinstance(purposes, x509.ExtendedKeyUsage) and not SIGNING_PURPOSES & set(purposes):
        names = ", ".join(getattr(p, "_name", p.dotted_string) for p in purposes)
        raise Refusal(
            "certificate-usage",
            f"the certificate's extended key usage ({names}) does not allow signing documents",
        )


def _require_signing_usage(_policy: object, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        raise ValueError("certificate KeyUsage allows neither digitalSignature nor nonRepudiation")


@dataclass(frozen=True)
class Chain:
    """A verified path, leaf first, anchor last; ``issuer`` is whom to ask about the leaf's status."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def issuer(self) -> x509.Certificate:
        return self.certificates[1] if len(self.certificates) > 1 else self.certificates[0]


def issuer_among(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that issued ``cert`` (name and signature), to ask about ``cert``'s status."""
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


class TrustStore:
    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        if not anchors:
            raise ValueError("a trust store needs at least one anchor; an empty one would trust nothing")
        self.anchors = tuple(anchors)
        self.generation = hashlib.sha256("".join(sorted(fingerprint(a) for a in anchors)).encode()).hexdigest()
        self._store = xv.Store(list(anchors))
        self._decisions: dict[str, tuple[datetime, Chain]] = {}
        self._lock = threading.Lock()

    def verify(
        self, cert: x509.Certificate, intermediates: Sequence[x509.Certificate] = (), *, at: datetime | None = None
    ) -> Chain:
        """The path from ``cert`` to an anchor, valid at ``at`` (now by default); :class:`Refusal` if none."""
        now = at or datetime.now(UTC)
        fp = fingerprint(cert)
        with self._lock:
            decided = self._decisions.get(fp)
        if decided is not None and now < decided[0] and now >= cert.not_valid_before_utc:
            return decided[1]
        check_key_strength(cert)
        check_end_entity(cert)
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
        chain = Chain(tuple(result.chain))
        if at is None:  # only decisions about the present are reused
            expires = min(c.not_valid_after_utc for c in result.chain)
            with self._lock:
                self._decisions[fp] = (expires, chain)
        return chain
