"""RFC 3161 trusted timestamps: ask a time-stamping authority (TSA) to countersign a digest, and check
that a token it returned really proves the digest existed at the time it names.

Evidence keeps the whole DER ``TimeStampResp`` exactly as the TSA sent it (:attr:`Timestamp.token`), and
:func:`verify_timestamp` accepts exactly that, so a token can be re-verified years later from the stored
bytes alone: trust is decided at the token's ``genTime`` (RFC 3161 §4.1), not at the time of checking.

Decoding and the CMS signature check (RFC 5652 §5.6) are done by ``rfc3161_client``, whose verifier,
given the anchors, the intermediates and the nonce:

* requires PKIStatus ``granted`` (it refuses ``grantedWithMods``, which RFC 3161 §2.4.2 allows; see
  :func:`_as_granted`);
* verifies the SignedData with OpenSSL's ``PKCS7_verify`` — the signature over the signed attributes and
  the message-digest attribute against the TSTInfo — building the signer's chain to the anchors at
  ``genTime`` with OpenSSL's timestamp-signing purpose (EKU exactly ``id-kp-timeStamping``, critical;
  KeyUsage at most digitalSignature + nonRepudiation);
* picks the leaf by the SignerInfo's issuerAndSerialNumber and requires its EKU to be critical and to
  contain ``id-kp-timeStamping``;
* compares the nonce and the imprint's hash bytes.

It does not check, and this module therefore does:

* the ESS signing-certificate(-v2) attribute binding the signer certificate into the signature (RFC 3161
  §2.4.1, RFC 5816 §2.2.1, RFC 2634 §5.4) — without it a certificate sharing the TSA's key could be
  substituted;
* that the content-type attribute names ``id-ct-TSTInfo`` (RFC 5652 §11.1) and that TSTInfo is version 1;
* that the imprint's *algorithm* is SHA-256 (the library compares the hash bytes only);
* the TSA certificate chain once more with ``cryptography``'s own path builder (RFC 5280 at ``genTime``,
  with anchors only from the caller: the library adds intermediates to OpenSSL's trusted store), plus the
  RFC 3161 §2.3 EKU rule (exactly one purpose, ``id-kp-timeStamping``, critical) and the gateway's key
  strength rule; doing this before the signature check is also what tells ``timestamp-untrusted`` apart
  from ``timestamp-signature``;
* the nonce being *present* when one was sent (RFC 3161 §2.4.2).

Refusal codes: ``timestamp-malformed``, ``timestamp-rejected``, ``timestamp-mismatch``, ``timestamp-nonce``,
``timestamp-untrusted``, ``timestamp-signature``, ``timestamp-unavailable``.

Revocation of the TSA certificate is not checked here (RFC 3161 §4 leaves it to the verifier's policy).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import TimeStampResponse, VerificationError, VerifierBuilder, decode_timestamp_response

from gateway import fetch
from gateway.policy import Refusal
from gateway.trust.keypolicy import check_public_key_strength
from gateway.trust.pki import fingerprint

QUERY_CONTENT_TYPE = "application/timestamp-query"  # RFC 3161 §3.4
REPLY_CONTENT_TYPE = "application/timestamp-reply"

_SHA256_LENGTH = 32
_MAX_NONCE_BITS = 64
_MAX_STATUS_TEXT = 200  # the TSA's free text goes into refusal reasons and the audit log: keep it short

_FAILURE_NAMES = {
    "bad_alg": "badAlg",
    "bad_request": "badRequest",
    "bad_data_format": "badDataFormat",
    "time_not_available": "timeNotAvailable",
    "unaccepted_policy": "unacceptedPolicy",
    "unaccepted_extensions": "unacceptedExtension",
    "add_info_not_available": "addInfoNotAvailable",
    "system_failure": "systemFailure",
}
"""asn1crypto's names for the PKIFailureInfo bits → the names RFC 3161 §2.4.2 gives them (for reasons)."""

_ASN1_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What asn1crypto raises, lazily, on contents it cannot make sense of."""

_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
_EC_SIGNATURES: dict[str, str | None] = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512"}
_RSA_SIGNATURES: dict[str, str | None] = {
    "rsassa_pkcs1v15": None,
    "sha256_rsa": "sha256",
    "sha384_rsa": "sha384",
    "sha512_rsa": "sha512",
}
"""SignerInfo signatureAlgorithm values accepted per key type, with the digest they imply (RFC 5754 §3).

OpenSSL's PKCS7_verify derives the algorithm from the key and the digestAlgorithm and never reads this
unsigned field, so without a check here any OID could stand in it.
"""

_ESS_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


class Asn1TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto ships no type hints
    """``TimeStampResp`` (RFC 3161 §2.4.2) with the token OPTIONAL, as the RFC has it.

    ``asn1crypto.tsp.TimeStampResp`` makes ``timeStampToken`` mandatory, so it can neither parse nor
    build the rejections a TSA must be able to send.
    """

    _fields = [  # noqa: RUF012  # asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class Timestamp:
    """A verified timestamp: ``token`` is what evidence keeps, the rest is read from it."""

    token: bytes  # DER TimeStampResp exactly as received from the TSA
    gen_time: datetime  # aware UTC
    serial: int
    digest: bytes  # the SHA-256 message imprint it covers
    tsa_subject: str  # RFC 4514
    tsa_certificate: x509.Certificate  # the signing certificate (from the token's certificates)
    tsa_fingerprint: str  # sha256 hex of its DER (gateway.trust.pki.fingerprint)
    certificates: tuple[x509.Certificate, ...] = ()  # the token's other certificates (the TSA's chain)


def build_request(digest: bytes, *, nonce: int) -> bytes:
    """A DER TimeStampReq (RFC 3161 §2.4.1) for a SHA-256 ``digest``, with ``nonce`` and certReq set.

    certReq makes the TSA embed its certificate, so a stored token carries everything needed to check it
    later.  The nonce lets the caller tell this answer from a replayed one (§2.4.1).

    Built with asn1crypto: ``rfc3161_client.TimestampRequestBuilder`` only hashes data itself and draws
    its own nonce, while evidence needs to stamp a digest it already holds and to know the nonce it sent.
    """
    if len(digest) != _SHA256_LENGTH:
        raise ValueError(f"a SHA-256 digest is {_SHA256_LENGTH} bytes, not {len(digest)}")
    if nonce < 0:
        raise ValueError("the nonce must not be negative")
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return bytes(request.dump())


def request_timestamp(
    url: str,
    digest: bytes,
    anchors: Sequence[x509.Certificate],
    *,
    bounds: fetch.Bounds = fetch.Bounds(),  # noqa: B008  # frozen, so sharing the default is safe
) -> Timestamp:
    """POST a fresh request for ``digest`` to the TSA at ``url`` (RFC 3161 §3.4) and verify the answer.

    A random 64-bit nonce ties the answer to this request; the TSA is read within ``bounds`` like every
    other remote trust service, and any transport failure is ``timestamp-unavailable``.
    """
    if not anchors:
        raise ValueError("timestamps need at least one trust anchor; none would trust nothing")
    nonce = secrets.randbits(_MAX_NONCE_BITS)
    body = build_request(digest, nonce=nonce)
    try:
        answer = fetch.fetch(url, body=body, content_type=QUERY_CONTENT_TYPE, accept=REPLY_CONTENT_TYPE, bounds=bounds)
    except fetch.FetchError as exc:
        raise Refusal("timestamp-unavailable", f"the time-stamping authority is unavailable: {exc.reason}") from None
    return verify_timestamp(answer, digest, anchors, nonce=nonce)


def verify_timestamp(
    token: bytes,
    digest: bytes,
    anchors: Sequence[x509.Certificate],
    *,
    nonce: int | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> Timestamp:
    """Check that ``token`` (a DER TimeStampResp) is a valid TSA countersignature of ``digest``.

    The TSA certificate must be embedded in the token and chain to one of ``anchors`` at the token's
    genTime, through ``intermediates`` or certificates embedded in the token.  ``nonce``, when given, must
    be echoed.  Content fields are only compared after the signature has been verified, so a tampered
    token is reported as tampered rather than as a mismatch.
    """
    if not anchors:
        raise ValueError("timestamps need at least one trust anchor; none would trust nothing")
    parsed = _parse(token)
    signed_data = parsed["time_stamp_token"]["content"]
    tst_info = signed_data["encap_content_info"]["content"].parsed
    signer_info = signed_data["signer_infos"][0]
    gen_time = tst_info["gen_time"].native.astimezone(UTC)

    embedded = _embedded_certificates(signed_data)
    leaf = _signer_certificate(signer_info, embedded)
    _check_tsa_certificate(leaf, gen_time, anchors, [*intermediates, *(c for c in embedded if c != leaf)])

    response = _decode(_as_granted(parsed, token))
    verifier = VerifierBuilder(roots=list(anchors), intermediates=list(intermediates), nonce=nonce).build()
    try:
        verifier.verify(response, digest)
    except (VerificationError, ValueError):
        _explain_failure(response, digest, anchors, intermediates, nonce)

    _check_algorithms(signer_info, leaf)
    _check_signed_attributes(signer_info, leaf)
    imprint = tst_info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != "sha256" or imprint["hashed_message"].native != digest:
        raise Refusal("timestamp-mismatch", "the timestamp covers a different digest")
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise Refusal("timestamp-nonce", "the timestamp does not echo the nonce of the request")
    return Timestamp(
        token=token,
        gen_time=gen_time,
        serial=int(tst_info["serial_number"].native),
        digest=digest,
        tsa_subject=leaf.subject.rfc4514_string(),
        tsa_certificate=leaf,
        tsa_fingerprint=fingerprint(leaf),
        certificates=tuple(c for c in embedded if c != leaf),
    )


def _parse(token: bytes) -> Asn1TimeStampResp:
    """Decode the whole response up front, so that nothing later trips over a lazy parse.

    Only the structure is checked here (``timestamp-malformed``), and the PKIStatus (``timestamp-rejected``,
    carrying the TSA's PKIFailureInfo and text, RFC 3161 §2.4.2).
    """
    try:
        parsed = Asn1TimeStampResp.load(token, strict=True)
        status = parsed["status"]["status"].native
    except _ASN1_ERRORS:
        raise Refusal("timestamp-malformed", "the timestamp is not a DER TimeStampResp") from None
    if status not in ("granted", "granted_with_mods"):
        raise Refusal("timestamp-rejected", _rejection_reason(parsed["status"]))
    try:
        content_info = parsed["time_stamp_token"]
        if content_info.native is None or content_info["content_type"].native != "signed_data":
            raise ValueError("no SignedData token")
        signed_data = content_info["content"]
        _ = signed_data.native  # forces every field, certificates and signer infos included
        if signed_data["version"].native != "v3":  # RFC 5652 §5.1: eContentType is not id-data
            raise ValueError("a timestamp SignedData is version 3")
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info" or encap["content"].native is None:
            raise ValueError("the token does not encapsulate a TSTInfo")
        tst_info = encap["content"].parsed
        _ = tst_info.native
        if tst_info["version"].native != "v1":
            raise ValueError("only TSTInfo version 1 is defined")
        gen_time = tst_info["gen_time"].native
        if not isinstance(gen_time, datetime) or gen_time.utcoffset() != timedelta(0):
            raise ValueError("genTime must be a UTC GeneralizedTime (RFC 3161 §2.4.2)")
        if len(signed_data["signer_infos"]) != 1:  # RFC 3161 §2.4.2: the TSA is the only signer
            raise ValueError("a timestamp has exactly one signer")
        signer_info = signed_data["signer_infos"][0]
        if signer_info["sid"].name != "issuer_and_serial_number" or signer_info["version"].native != "v1":
            raise ValueError("the signer is not identified by issuer and serial number (RFC 5652 §5.3)")
        if signer_info["signed_attrs"].native is None:  # RFC 5652 §5.3: required with a non-data eContentType
            raise ValueError("the token has no signed attributes")
    except _ASN1_ERRORS:
        raise Refusal("timestamp-malformed", "the timestamp token cannot be parsed") from None
    return parsed  # type: ignore[no-any-return]  # asn1crypto ships no type hints


def _rejection_reason(status: tsp.PKIStatusInfo) -> str:
    failures = sorted(_FAILURE_NAMES.get(name, str(name)) for name in (status["fail_info"].native or ()))
    texts = [str(text)[:_MAX_STATUS_TEXT] for text in (status["status_string"].native or ())][:3]
    reason = f"the time-stamping authority answered {status['status'].native}"
    if failures:
        reason += f" ({', '.join(failures)})"
    if texts:
        reason += f": {'; '.join(texts)}"
    return reason


def _decode(der: bytes) -> TimeStampResponse:
    try:
        response = decode_timestamp_response(der)
        _ = response.tst_info, response.signed_data  # the library parses the token lazily, too
    except ValueError:
        raise Refusal("timestamp-malformed", "the timestamp token cannot be decoded") from None
    return response


def _as_granted(parsed: Asn1TimeStampResp, token: bytes) -> bytes:
    """The response with its PKIStatus set to ``granted``, the token byte for byte unchanged.

    RFC 3161 §2.4.2 makes ``grantedWithMods`` a success carrying a token, but ``rfc3161_client`` only
    verifies ``granted``.  The PKIStatusInfo lies outside the signed token, so rewriting it changes
    nothing the signature covers; the stored token keeps the status the TSA sent.
    """
    if parsed["status"]["status"].native == "granted":
        return token
    return bytes(
        Asn1TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": parsed["time_stamp_token"]}).dump()
    )


def _embedded_certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    """The X.509 certificates in the token's ``certificates`` (RFC 5652 §10.2.3); other choices are skipped."""
    choices = signed_data["certificates"]
    if choices.native is None:
        return []
    try:
        return [x509.load_der_x509_certificate(c.chosen.dump()) for c in choices if c.name == "certificate"]
    except (ValueError, x509.InvalidVersion):
        raise Refusal("timestamp-malformed", "a certificate in the timestamp cannot be parsed") from None


def _signer_certificate(signer_info: cms.SignerInfo, embedded: Sequence[x509.Certificate]) -> x509.Certificate:
    """The embedded certificate the SignerInfo names (issuerAndSerialNumber, RFC 5652 §5.3).

    The same rule ``rfc3161_client`` uses, so both checks look at the same certificate.
    """
    sid = signer_info["sid"].chosen
    issuer, serial = sid["issuer"], sid["serial_number"].native
    for cert in embedded:
        if cert.serial_number == serial and asn1_x509.Name.load(cert.issuer.public_bytes()) == issuer:
            return cert
    raise Refusal("timestamp-untrusted", "the timestamp does not carry the certificate of the TSA that signed it")


def _check_tsa_certificate(
    cert: x509.Certificate,
    gen_time: datetime,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
) -> None:
    """RFC 3161 §2.3 and RFC 5280 §6 for the TSA certificate, at ``gen_time`` (RFC 3161 §4.1)."""
    subject = cert.subject.rfc4514_string()
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Refusal(
            "timestamp-untrusted", f"the public key of the TSA certificate {subject} cannot be read"
        ) from None
    check_public_key_strength(key, "timestamp-untrusted")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        if not eku.critical:
            raise ValueError("its extended key usage is not critical")
        _require_timestamping_only(None, cert, eku.value)
        _allow_signing_usage(None, cert, _key_usage(cert))
    except x509.ExtensionNotFound:
        raise Refusal(
            "timestamp-untrusted", f"{subject} is not a TSA certificate: it has no extended key usage"
        ) from None
    except ValueError as exc:
        raise Refusal("timestamp-untrusted", f"{subject} is not a TSA certificate: {exc}") from None
    if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
        raise Refusal(
            "timestamp-untrusted",
            f"the TSA certificate {subject} was not valid at {gen_time:%Y-%m-%d %H:%M:%S} UTC, the time it names",
        )
    ee_policy = (
        xv.ExtensionPolicy.permit_all()
        .require_present(x509.ExtendedKeyUsage, xv.Criticality.CRITICAL, _require_timestamping_only)
        .may_be_present(x509.KeyUsage, xv.Criticality.AGNOSTIC, _allow_signing_usage)
    )
    verifier = (
        xv.PolicyBuilder()
        .store(xv.Store(list(anchors)))
        .time(gen_time)
        .extension_policies(ee_policy=ee_policy, ca_policy=xv.ExtensionPolicy.webpki_defaults_ca())
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, list(intermediates))
    except (xv.VerificationError, ValueError) as exc:
        raise Refusal(
            "timestamp-untrusted", f"the TSA certificate {subject} does not chain to a trust anchor: {exc}"
        ) from None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _require_timestamping_only(_policy: object, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
    """RFC 3161 §2.3: the EKU's only KeyPurposeId is ``id-kp-timeStamping`` (criticality is checked apart).

    Strictly *only*: a key that may also authenticate TLS clients or sign code must not be able to
    vouch for the time of evidence, and OpenSSL's timestamp-signing purpose insists on the same.
    """
    if list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError("its extended key usage is not exactly id-kp-timeStamping")


def _allow_signing_usage(_policy: object, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    """A TSA key signs tokens and nothing else: KeyUsage, when present, allows only digitalSignature and
    nonRepudiation and at least one of them (RFC 5280 §4.2.1.12: KeyUsage and EKU must agree)."""
    if usage is None:
        return
    others = (
        usage.key_encipherment
        or usage.data_encipherment
        or usage.key_agreement
        or usage.key_cert_sign
        or usage.crl_sign
    )
    if others or not (usage.digital_signature or usage.content_commitment):
        raise ValueError("its key usage is not limited to digitalSignature / nonRepudiation")


def _explain_failure(
    response: TimeStampResponse,
    digest: bytes,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    nonce: int | None,
) -> NoReturn:
    """Turn the library's single failure into the refusal code that says what went wrong.

    The certificate was already accepted by :func:`_check_tsa_certificate`, so a failure is either the
    signature or the content.  Verifying again without the nonce and against the token's own imprint
    tells them apart without matching the library's message texts: if that passes, the signature is
    good and the caller's digest or nonce is what differs.
    """
    own_imprint = response.tst_info.message_imprint.message
    bare = VerifierBuilder(roots=list(anchors), intermediates=list(intermediates)).build()
    try:
        bare.verify(response, own_imprint)
    except (VerificationError, ValueError):
        raise Refusal("timestamp-signature", "the timestamp signature does not verify: it was altered") from None
    if own_imprint != digest:
        raise Refusal("timestamp-mismatch", "the timestamp covers a different digest")
    if nonce is not None and response.tst_info.nonce != nonce:
        raise Refusal("timestamp-nonce", "the timestamp does not echo the nonce of the request")
    raise Refusal("timestamp-signature", "the timestamp does not verify")  # pragma: no cover - defensive


def _check_algorithms(signer_info: cms.SignerInfo, cert: x509.Certificate) -> None:
    """The SignerInfo names a SHA-2 digest and a signature algorithm that fits the TSA key and that digest."""
    digest = signer_info["digest_algorithm"]["algorithm"].native
    signature = signer_info["signature_algorithm"]["algorithm"].native
    key = cert.public_key()
    accepted: dict[str, str | None] = {}
    if isinstance(key, ec.EllipticCurvePublicKey):
        accepted = _EC_SIGNATURES
    elif isinstance(key, rsa.RSAPublicKey):
        accepted = _RSA_SIGNATURES
    if digest not in _DIGESTS or signature not in accepted or accepted[signature] not in (None, digest):
        raise Refusal("timestamp-signature", f"the token's algorithms ({signature}, {digest}) do not fit the TSA key")


def _check_signed_attributes(signer_info: cms.SignerInfo, cert: x509.Certificate) -> None:
    """The signed attributes RFC 3161 and RFC 5652 require but OpenSSL's PKCS7_verify does not look at.

    content-type must name id-ct-TSTInfo (RFC 5652 §11.1), and an ESS signing-certificate attribute —
    SigningCertificateV2 (RFC 5816 §2.2.1) or the SHA-1 SigningCertificate (RFC 2634 §5.4) — must bind
    ``cert``: its first ESSCertID hashes that certificate and, when it names issuer and serial, names
    this one (RFC 3161 §2.4.1).
    """
    attributes: dict[str, list[Any]] = {}
    for attribute in signer_info["signed_attrs"]:
        attributes.setdefault(attribute["type"].native, []).extend(attribute["values"])
    content_types = attributes.get("content_type", [])
    if len(content_types) != 1 or content_types[0].native != "tst_info":
        raise Refusal("timestamp-signature", "the signed content type is not a TSTInfo")
    v2 = attributes.get("signing_certificate_v2", [])
    v1 = attributes.get("signing_certificate", [])
    if len(v2) + len(v1) != 1:
        raise Refusal("timestamp-signature", "the timestamp does not bind its signing certificate (RFC 5816)")
    ess = (v2 or v1)[0]
    cert_id = ess["certs"][0]
    algorithm = cert_id["hash_algorithm"]["algorithm"].native if v2 else "sha1"
    hash_function = _ESS_HASHES.get(algorithm)
    der = cert.public_bytes(Encoding.DER)
    if hash_function is None or hash_function(der).digest() != cert_id["cert_hash"].native:
        raise Refusal("timestamp-signature", "the timestamp binds a different signing certificate")
    issuer_serial = cert_id["issuer_serial"]
    if issuer_serial.native is not None:
        names = [name.chosen for name in issuer_serial["issuer"] if name.name == "directory_name"]
        issuer = asn1_x509.Name.load(cert.issuer.public_bytes())
        if issuer_serial["serial_number"].native != cert.serial_number or issuer not in names:
            raise Refusal("timestamp-signature", "the timestamp binds a different signing certificate")
