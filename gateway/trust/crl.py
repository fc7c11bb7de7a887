"""Reading a certificate's status from its issuer's Certificate Revocation List (RFC 5280 §5, §6.3).

The CRL is the fallback when no OCSP responder answers.  It is believed only when the issuer of the
certificate signed it (this module does not implement indirect CRLs, §5.2.5 ``indirectCRL``), it is a
complete CRL for all reasons (not a delta CRL, §5.2.4, nor one restricted by an issuing distribution
point), and it is current: a CRL promises nothing after its nextUpdate (§5.1.2.5).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gateway import fetch
from gateway.policy import Refusal
from gateway.trust.status import CertStatus

CLOCK_SKEW = timedelta(seconds=300)
"""How far our clock and the CA's may disagree before a time is held against the CRL."""

CONTENT_TYPE_CRL = "application/pkix-crl"  # RFC 2585 §4.2

_CRL_SIGNING_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)


def distribution_points(cert: x509.Certificate) -> list[str]:
    """The http(s) full-name URIs of ``cert``'s CRL distribution points (RFC 5280 §4.2.1.13).

    Points that only cover some reasons or whose CRL another authority signs (``reasons`` /
    ``cRLIssuer``) are skipped: :func:`verify_crl` needs a complete CRL signed by the issuer.
    """
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for point in points:
        if point.full_name is None or point.reasons is not None or point.crl_issuer is not None:
            continue
        for name in point.full_name:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                ("http://", "https://")
            ):
                urls.append(name.value)
    return urls


def verify_crl(
    der: bytes, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime, max_age: float
) -> CertStatus:
    """Check a CRL from ``issuer`` and return ``cert``'s status in it.

    ``der`` may also be PEM (some CAs publish that despite RFC 5280 §4.2.1.13 asking for DER); the
    evidence kept is DER either way.  ``max_age`` (seconds) only applies to a CRL without nextUpdate,
    which RFC 5280 §5.1.2.5 forbids conforming CAs to issue but which exist.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    crl, evidence = _parse(der)
    if cert.issuer != issuer.subject:
        raise Refusal("crl-wrong-issuer", "the certificate was not issued by the given issuer")
    if crl.issuer != issuer.subject:
        raise Refusal("crl-wrong-issuer", "the CRL was issued by another authority than the certificate's issuer")
    _check_may_sign_crls(issuer)
    try:
        key = issuer.public_key()
        valid = isinstance(key, _CRL_SIGNING_KEYS) and crl.is_signature_valid(key)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise Refusal("crl-signature", "the CRL's signature does not verify with the issuer's key")
    _check_complete(crl)
    last_update = crl.last_update_utc
    next_update = crl.next_update_utc
    _check_fresh(last_update, next_update, now, max_age)
    try:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        reason = _entry_reason(entry) if entry is not None else None
    except ValueError:
        raise Refusal("crl-malformed", "the CRL's entry for the certificate cannot be parsed") from None
    return CertStatus(
        state="good" if entry is None else "revoked",
        source="crl",
        url="",
        this_update=last_update,
        next_update=next_update,
        produced_at=last_update,
        revoked_at=None if entry is None else entry.revocation_date_utc,
        reason=reason,
        evidence=evidence,
        responder=issuer.subject.rfc4514_string(),
    )


def fetch_crl(
    url: str,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime,
    max_age: float,
    bounds: fetch.Bounds,
) -> CertStatus:
    """GET the CRL at ``url`` within ``bounds`` and return ``cert``'s status in it.

    CRLs of large CAs run to megabytes; ``bounds.max_bytes`` is what keeps one from filling memory.
    """
    try:
        der = fetch.fetch(url, accept=CONTENT_TYPE_CRL, bounds=bounds)
    except fetch.FetchError as exc:
        raise Refusal("crl-unavailable", exc.reason) from None
    return dataclasses.replace(verify_crl(der, cert, issuer, now=now, max_age=max_age), url=url)


def _parse(data: bytes) -> tuple[x509.CertificateRevocationList, bytes]:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
            evidence = crl.public_bytes(serialization.Encoding.DER)
        else:
            crl, evidence = x509.load_der_x509_crl(data), data
        _ = crl.extensions  # parsed lazily: a broken extension list is malformed, not a crash later
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise Refusal("crl-malformed", f"the CRL cannot be parsed ({type(exc).__name__})") from None
    return crl, evidence


def _check_may_sign_crls(issuer: x509.Certificate) -> None:
    """RFC 5280 §6.3.3 (f): the CRL signer's key usage, when present, must include cRLSign."""
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.crl_sign:
        raise Refusal("crl-wrong-issuer", "the issuer's certificate does not allow it to sign CRLs")


def _check_complete(crl: x509.CertificateRevocationList) -> None:
    """Refuse CRLs whose silence about a serial would not mean "not revoked" (RFC 5280 §5.2.4, §5.2.5)."""
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        raise Refusal("crl-unsupported", "the CRL is a delta CRL; a complete CRL is needed")
    try:
        scope = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if scope.indirect_crl or scope.only_some_reasons is not None or scope.only_contains_attribute_certs:
        raise Refusal("crl-unsupported", "the CRL covers only part of the issuer's certificates or reasons")
    if scope.only_contains_ca_certs:
        raise Refusal("crl-unsupported", "the CRL only covers CA certificates")


def _check_fresh(last_update: datetime, next_update: datetime | None, now: datetime, max_age: float) -> None:
    if last_update > now + CLOCK_SKEW:
        ahead = (last_update - now).total_seconds()
        raise Refusal("crl-stale", f"the CRL's thisUpdate is {ahead:.0f} s in the future")
    if next_update is not None:
        if next_update < now - CLOCK_SKEW:
            expired = (now - next_update).total_seconds()
            raise Refusal("crl-stale", f"the CRL's nextUpdate passed {expired:.0f} s ago")
        return
    age = (now - last_update).total_seconds()
    if age > max_age:
        raise Refusal("crl-stale", f"the CRL has no nextUpdate and is {age:.0f} s old; at most {max_age:.0f} s")


def _entry_reason(entry: x509.RevokedCertificate) -> str | None:
    """The entry's CRLReason (RFC 5280 §5.3.1); absent and ``unspecified`` both mean "no reason given"."""
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return None if reason is x509.ReasonFlags.unspecified else reason.value
