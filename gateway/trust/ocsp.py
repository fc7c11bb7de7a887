"""Asking an OCSP responder whether a certificate is revoked, and believing only answers we can check.

An OCSP response is worth exactly as much as its signer: anyone can produce a well-formed "good".  So
:func:`verify_response` accepts a response only when it is (RFC 6960 §3.2)

1. about *this* certificate — serial number and issuer name/key hashes (§4.1.1 CertID) match;
2. signed by a responder authorised for the issuer (§4.2.2.2): the issuing CA itself, a delegated
   responder certificate the CA issued with ``id-kp-OCSPSigning``, or a responder configured locally;
3. fresh: thisUpdate not in the future, not older than the caller's ``max_age``, nextUpdate not passed
   (§4.2.2.1 leaves the window to local policy; ours is ``max_age`` plus :data:`CLOCK_SKEW`);
4. answering our nonce when it echoes one (§4.4.1).  A response without a nonce is accepted, since
   many responders pre-produce responses and ignore nonces (RFC 8954 §1); the freshness window is
   what bounds a replay then.

Each failure has its own refusal code so that operators can tell "the responder is down" from "someone
is forging answers".  All ASN.1 is left to ``cryptography``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, SignatureAlgorithmOID

from gateway import fetch
from gateway.policy import Refusal
from gateway.trust.status import CertStatus, State

CLOCK_SKEW = timedelta(seconds=300)
"""How far our clock and a responder's may disagree before a time is held against the response."""

NONCE_BYTES = 16
"""RFC 8954 §2.1: at least 1 and at most 32 octets; 16 random octets cannot be guessed."""

CONTENT_TYPE_REQUEST = "application/ocsp-request"
CONTENT_TYPE_RESPONSE = "application/ocsp-response"

CertIdHash = Literal["sha256", "sha1"]
_CERT_ID_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}

_STATES: dict[ocsp.OCSPCertStatus, State] = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}


def responder_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) OCSP responder URLs in ``cert``'s Authority Information Access (RFC 5280 §4.2.2.1).

    Other schemes (ldap:, file:) are dropped: the gateway only talks to responders through the bounded
    HTTP client, and RFC 6960 Appendix A defines OCSP over HTTP only.
    """
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for description in aia:
        location = description.access_location
        if description.access_method != AuthorityInformationAccessOID.OCSP:
            continue
        if isinstance(location, x509.UniformResourceIdentifier) and _is_http(location.value):
            urls.append(location.value)
    return urls


def build_request(
    cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None, cert_id_hash: CertIdHash = "sha256"
) -> bytes:
    """A DER OCSPRequest (RFC 6960 §4.1) for ``cert``, with a nonce extension (§4.4.1) when given.

    The CertID is hashed with SHA-256 by default: SHA-1 is no longer collision resistant and RFC 6960
    §4.3 lets clients choose.  ``cert_id_hash="sha1"`` exists for responders following the lightweight
    profile (RFC 5019 §2.1.1), which only understand SHA-1 CertIDs.
    """
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, _CERT_ID_HASHES[cert_id_hash]())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def verify_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None,
    now: datetime,
    max_age: float,
    trusted_responders: Sequence[x509.Certificate] = (),
) -> CertStatus:
    """Check an OCSP response about ``cert`` (issued by ``issuer``) and return what it says.

    ``now`` must be aware; ``max_age`` is in seconds.  ``trusted_responders`` are responder certificates
    the operator configured locally (RFC 6960 §4.2.2.2, first option): they are believed for any issuer.
    The returned status has ``url=""``; :func:`query` fills it in.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    response = _parse(der)
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Refusal("ocsp-error", f"the OCSP responder answered {response.response_status.name}")
    if cert.issuer != issuer.subject:
        raise Refusal("ocsp-wrong-certificate", "the certificate was not issued by the given issuer")
    single = _single_response_for(response, cert, issuer)
    signer = _authorised_signer(response, issuer, trusted_responders, now)
    _check_critical_extensions(response)
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    _check_fresh(this_update, next_update, now, max_age)
    if nonce is not None:
        _check_nonce(response, nonce)
    state = _STATES[single.certificate_status]
    revoked_at = single.revocation_time_utc if state == "revoked" else None
    reason = single.revocation_reason if state == "revoked" else None
    return CertStatus(
        state=state,
        source="ocsp",
        url="",
        this_update=this_update,
        next_update=next_update,
        produced_at=response.produced_at_utc,
        revoked_at=revoked_at,
        reason=None if reason is None or reason is x509.ReasonFlags.unspecified else reason.value,
        evidence=der,
        responder=signer.subject.rfc4514_string(),
    )


def query(
    url: str,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime,
    max_age: float,
    bounds: fetch.Bounds,
    trusted_responders: Sequence[x509.Certificate] = (),
    use_nonce: bool = True,
    cert_id_hash: CertIdHash = "sha256",
) -> CertStatus:
    """POST an OCSP request for ``cert`` to ``url`` (RFC 6960 Appendix A.1) and verify the answer.

    A fresh random nonce is sent unless ``use_nonce`` is false (for responders that refuse requests
    carrying one).  Network trouble — unreachable, slow, oversized, non-200 — is ``ocsp-unavailable``,
    kept apart from the codes that mean the answer itself was unacceptable.
    """
    nonce = secrets.token_bytes(NONCE_BYTES) if use_nonce else None
    body = build_request(cert, issuer, nonce=nonce, cert_id_hash=cert_id_hash)
    try:
        der = fetch.fetch(
            url, body=body, content_type=CONTENT_TYPE_REQUEST, accept=CONTENT_TYPE_RESPONSE, bounds=bounds
        )
    except fetch.FetchError as exc:
        raise Refusal("ocsp-unavailable", exc.reason) from None
    status = verify_response(
        der, cert, issuer, nonce=nonce, now=now, max_age=max_age, trusted_responders=trusted_responders
    )
    return dataclasses.replace(status, url=url)


def cert_id_hashes(cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """``issuerNameHash || issuerKeyHash`` of the CertID for ``cert`` under ``algorithm`` (RFC 6960 §4.1.1).

    Computed by letting ``cryptography`` build a request, so the key hash is over the issuer's actual
    subjectPublicKey bits rather than a re-encoding of the key.
    """
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return request.issuer_name_hash + request.issuer_key_hash


def responder_key_hash(cert: x509.Certificate) -> bytes:
    """The ResponderID ``byKey`` value for ``cert``: SHA-1 of its subjectPublicKey (RFC 6960 §4.2.1)."""
    sha1 = hashes.SHA1()  # noqa: S303 - fixed by RFC 6960 §4.2.1 as a key identifier, not for collision resistance
    return ocsp.OCSPRequestBuilder().add_certificate(cert, cert, sha1).build().issuer_key_hash


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _parse(der: bytes) -> ocsp.OCSPResponse:
    try:
        response = ocsp.load_der_ocsp_response(der)
        # Touch the lazily parsed parts now, so a broken structure is "malformed" and not a crash later.
        if response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
            list(response.responses)
            _ = response.certificates, response.responder_key_hash, response.responder_name, response.extensions
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise Refusal("ocsp-malformed", f"the OCSP response cannot be parsed ({type(exc).__name__})") from None
    return response


def _single_response_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    """The SingleResponse whose CertID names ``cert``, hashed with whichever algorithm the responder used.

    Responders may answer in a different hash than the request's (RFC 6960 §4.2.1 does not forbid it)
    and may include several SingleResponses; one must match exactly.
    """
    for single in _singles(response):
        if single.serial_number != cert.serial_number:
            continue
        try:
            expected = cert_id_hashes(cert, issuer, single.hash_algorithm)
        except (UnsupportedAlgorithm, ValueError):
            continue
        if single.issuer_name_hash + single.issuer_key_hash == expected:
            return single
    raise Refusal("ocsp-wrong-certificate", "the OCSP response is not about the certificate asked for")


def _singles(response: ocsp.OCSPResponse) -> Iterator[ocsp.OCSPSingleResponse]:
    try:
        yield from response.responses
    except ValueError:
        raise Refusal("ocsp-malformed", "the OCSP response's status list cannot be parsed") from None


def _authorised_signer(
    response: ocsp.OCSPResponse,
    issuer: x509.Certificate,
    trusted_responders: Sequence[x509.Certificate],
    now: datetime,
) -> x509.Certificate:
    """The certificate that signed ``response``, provided it may speak for ``issuer`` (RFC 6960 §4.2.2.2).

    Candidates are those the ResponderID (§4.2.1) names: the issuer, certificates included in the
    response and the locally trusted responders.  An included certificate is only a claim, so it must
    itself be issued by ``issuer`` (signature and name), carry id-kp-OCSPSigning and be valid now.
    """
    candidates = [("issuer", issuer)]
    candidates += [("included", included) for included in response.certificates]
    candidates += [("configured", configured) for configured in trusted_responders]
    problems: list[str] = []
    signature_failed = False
    for kind, candidate in candidates:
        if not _names_responder(response, candidate):
            continue
        problem = _why_not_authorised(kind, candidate, issuer, now)
        if problem is not None:
            problems.append(problem)
            continue
        if _signature_valid(response, candidate):
            return candidate
        signature_failed = True
    if signature_failed:
        raise Refusal("ocsp-signature", "the OCSP response's signature does not verify")
    if not problems:
        problems.append(
            "the OCSP response is signed by a responder that is neither the issuer, "
            "a delegated responder it certified, nor a configured responder"
        )
    raise Refusal("ocsp-unauthorized-responder", "; ".join(dict.fromkeys(problems)))


def _names_responder(response: ocsp.OCSPResponse, candidate: x509.Certificate) -> bool:
    key_hash = response.responder_key_hash
    if key_hash is not None:
        try:
            return responder_key_hash(candidate) == key_hash
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return False
    return response.responder_name == candidate.subject


def _why_not_authorised(kind: str, candidate: x509.Certificate, issuer: x509.Certificate, now: datetime) -> str | None:
    if kind == "issuer":
        return None
    subject = candidate.subject.rfc4514_string()
    if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
        return f"the responder certificate {subject} is not valid now"
    if kind == "configured":
        return None
    try:
        candidate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return f"the responder certificate {subject} was not issued by the certificate's issuer"
    try:
        usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return f"the responder certificate {subject} has no extended key usage id-kp-OCSPSigning"
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        return f"the responder certificate {subject} is not authorised for OCSP signing"
    return None


def _signature_valid(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    """Verify the BasicOCSPResponse signature over tbsResponseData (RFC 6960 §4.2.1) with ``signer``'s key."""
    if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
        return False  # cryptography does not expose the PSS parameters of an OCSP response
    try:
        algorithm = response.signature_hash_algorithm
        key = signer.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return False
    return _verify(key, response.signature, response.tbs_response_bytes, algorithm)


def _verify(
    key: CertificatePublicKeyTypes, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) and algorithm is None:
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _check_critical_extensions(response: ocsp.OCSPResponse) -> None:
    """Refuse a response that relies on an extension we do not implement (RFC 5280 §4.2 rule, RFC 6960 §4.4)."""
    extensions = list(response.extensions)
    with contextlib.suppress(ValueError):  # several SingleResponses: only a lone one's extensions are exposed
        extensions += list(response.single_extensions)
    for extension in extensions:
        if extension.critical and not isinstance(extension.value, x509.OCSPNonce):
            raise Refusal("ocsp-malformed", f"the OCSP response has an unsupported critical extension {extension.oid}")


def _check_fresh(this_update: datetime, next_update: datetime | None, now: datetime, max_age: float) -> None:
    if this_update > now + CLOCK_SKEW:
        ahead = (this_update - now).total_seconds()
        raise Refusal("ocsp-stale", f"the OCSP response's thisUpdate is {ahead:.0f} s in the future")
    age = (now - this_update).total_seconds()
    if age > max_age:
        raise Refusal("ocsp-stale", f"the OCSP response is {age:.0f} s old; at most {max_age:.0f} s is accepted")
    if next_update is not None and next_update < now - CLOCK_SKEW:
        expired = (now - next_update).total_seconds()
        raise Refusal("ocsp-stale", f"the OCSP response's nextUpdate passed {expired:.0f} s ago")


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return  # RFC 8954 §1: many responders ignore nonces; freshness bounds the replay window instead
    if not secrets.compare_digest(echoed, nonce):
        raise Refusal("ocsp-nonce", "the OCSP response answers a different request (nonce mismatch)")
