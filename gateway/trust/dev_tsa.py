"""A development time-stamping authority (RFC 3161), served only in demo mode and by the tests.

The gateway asks a TSA to countersign the digests it keeps as evidence (:mod:`gateway.trust.timestamps`).
In production that TSA is a licensed third party; in demo mode and in the test suite nothing external may
be needed, so this module answers TimeStampReq messages itself.  It is *not* a production TSA: it has no
secure clock, no audited key storage, no accuracy statement and no TSA policy worth relying on, and its
tokens carry :data:`DEV_POLICY_OID` so that nobody mistakes them for real ones.

No well-kept Python library provides a TSA server, so this is the only place in the gateway that
hand-assembles CMS: the structures come from ``asn1crypto`` (``tsp``, ``cms``, ``algos``) and the
signature from ``cryptography``.  Everything that *reads* tokens goes through ``rfc3161_client`` instead,
and the tests check that it accepts what is built here.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.trust import pki
from gateway.trust.timestamps import Asn1TimeStampResp

DEV_POLICY_OID = "2.25.219448685433442038958734334391022971812"
"""The TSA policy (RFC 3161 §2.4.2 ``policy``) stamped into every development token.

It lives under the ``2.25`` arc, where an OID is the decimal value of a freshly generated UUID
(ITU-T X.667 | ISO/IEC 9834-8 §6.3): anyone may mint one without registering it, and it cannot collide
with a policy a real TSA publishes.  Unlike a made-up private enterprise number it belongs to nobody else.
"""

_IMPRINT_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}
"""Hash algorithms accepted in a request's messageImprint, with their digest sizes.

SHA-1 and MD5 imprints are refused with ``badAlg`` (RFC 3161 §2.4.2): a timestamp over a collidable hash
proves nothing about the document.
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def issue_tsa_certificate(ca: pki.Issued) -> pki.Issued:
    """A TSA certificate issued by ``ca``: EC P-256, ``id-kp-timeStamping`` as the only, critical EKU.

    RFC 3161 §2.3 requires exactly that extended key usage, marked critical, on the TSA's certificate;
    :func:`pki.issue_service_certificate` already sets it so, and also restricts KeyUsage to
    digitalSignature + nonRepudiation.
    """
    return pki.issue_service_certificate(
        ca, "Interconnect Gateway TSA (development)", ExtendedKeyUsageOID.TIME_STAMPING
    )


class _Refused(Exception):
    """A request this TSA will not stamp: becomes a ``rejection`` TimeStampResp, never an HTTP error."""

    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


class DevTsa:
    """Answers DER TimeStampReq messages with DER TimeStampResp messages (RFC 3161 §2.4).

    ``issued`` holds the TSA key and certificate; ``chain`` the certificates between it and the trust
    anchor, included in the token (with the TSA certificate) when the request sets ``certReq``.  ``clock``
    is the TSA's notion of now, which tests replace; it must return aware datetimes.  ``policy_oid`` is
    the TSA policy stamped into every token (see :data:`DEV_POLICY_OID`).

    The signer is not required to hold a proper TSA certificate: tests build a ``DevTsa`` around a
    document-signing certificate to prove that verifiers refuse its tokens.
    """

    def __init__(
        self,
        issued: pki.Issued,
        chain: Sequence[x509.Certificate] = (),
        *,
        clock: Callable[[], datetime] = _utc_now,
        policy_oid: str = DEV_POLICY_OID,
    ) -> None:
        key_spki = issued.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        cert_spki = issued.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if key_spki != cert_spki:
            raise ValueError("the TSA key does not belong to the TSA certificate: every token would fail to verify")
        self._issued = issued
        self._clock = clock
        self._policy = core.ObjectIdentifier(policy_oid)
        self._cert = asn1_x509.Certificate.load(issued.cert.public_bytes(serialization.Encoding.DER))
        self._chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]
        # RFC 3161 §2.4.2: serialNumber must be unique for each token a TSA issues.  A random 64-bit
        # start makes two development TSAs (or one restarted) practically never repeat a serial, and
        # the counter keeps one instance's serials strictly increasing; the result stays under the
        # 160 bits clients must accept.
        self._serials = itertools.count((secrets.randbits(64) << 32) + 1)
        self._lock = threading.Lock()

    @property
    def certificate(self) -> x509.Certificate:
        return self._issued.cert

    def respond(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp for one DER TimeStampReq: ``granted`` with a token, or ``rejection``.

        Failures are answered in-band, as RFC 3161 §2.4.2 prescribes, with the PKIFailureInfo bit a
        client can act on: ``badDataFormat`` for anything that is not a well-formed v1 request,
        ``badAlg`` for an imprint hash other than SHA-256/384/512, ``unacceptedPolicy`` for a requested
        policy other than ours, ``unacceptedExtension`` for any request extension (none is supported).
        """
        try:
            request = self._parse(request_der)
        except _Refused as refused:
            return _rejection(refused.fail_info, refused.text)
        return self._grant(request)

    def _parse(self, request_der: bytes) -> tsp.TimeStampReq:
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            _ = request.native  # asn1crypto parses lazily; this forces every field and surfaces bad encodings
            version = request["version"].native
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
            imprint = request["message_imprint"]["hashed_message"].native
            policy = request["req_policy"]
            extensions = request["extensions"]
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            raise _Refused("bad_data_format", "the request is not a DER TimeStampReq") from None
        if version != "v1":
            raise _Refused("bad_data_format", "only version 1 requests are understood")
        if algorithm not in _IMPRINT_LENGTHS:
            raise _Refused("bad_alg", f"the imprint hash {algorithm} is not accepted: use SHA-256, -384 or -512")
        if len(imprint) != _IMPRINT_LENGTHS[algorithm]:
            raise _Refused("bad_data_format", f"a {algorithm} imprint is {_IMPRINT_LENGTHS[algorithm]} bytes long")
        if policy.native is not None and policy.dotted != self._policy.dotted:
            raise _Refused("unaccepted_policy", f"this TSA only issues tokens under policy {self._policy.dotted}")
        if extensions.native:
            raise _Refused("unaccepted_extensions", "this TSA supports no request extensions")
        return request

    def _grant(self, request: tsp.TimeStampReq) -> bytes:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the TSA clock must return aware datetimes")
        with self._lock:
            serial = next(self._serials)
        tst_fields: dict[str, object] = {
            "version": "v1",
            "policy": self._policy,
            "message_imprint": request["message_imprint"],  # RFC 3161 §2.4.2: the same value as in the request
            "serial_number": serial,
            "gen_time": now.astimezone(UTC),  # GeneralizedTime with the clock's microseconds, trailing zeros dropped
            "tsa": asn1_x509.GeneralName({"directory_name": self._cert.subject}),
        }
        if request["nonce"].native is not None:  # §2.4.2: MUST be present, with the same value, if requested
            tst_fields["nonce"] = request["nonce"].native
        tst_info_der = tsp.TSTInfo(tst_fields).dump()

        signed_attrs = cms.CMSAttributes(
            [
                # RFC 5652 §11.1/§11.2: content-type and message-digest are mandatory with signedAttrs.
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_info_der).digest()]},
                # §11.3: UTCTime for dates up to 2049, at whole seconds.
                {
                    "type": "signing_time",
                    "values": [cms.Time({"utc_time": now.astimezone(UTC).replace(microsecond=0)})],
                },
                # RFC 3161 §2.4.1 / RFC 5816 §2.2.1: bind the signing certificate into the signed attributes
                # (by SHA-256 hash — the DEFAULT algorithm, so left unencoded — and issuer + serial) so that a
                # different certificate with the same key cannot be substituted.
                {"type": "signing_certificate_v2", "values": [self._signing_certificate_v2()]},
            ]
        )
        # The signature covers the DER of the attributes as an explicit SET OF (RFC 5652 §5.4), which
        # asn1crypto sorts as DER requires; the same object is then stored under [0] IMPLICIT.
        signature_algorithm, signature = self._sign(signed_attrs.dump())

        signer_info = cms.SignerInfo(
            {
                "version": "v1",  # §5.3: v1 when the sid is issuerAndSerialNumber
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": self._cert.issuer,
                            "serial_number": self._cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": signature_algorithm,
                "signature": signature,
            }
        )
        signed_data_fields: dict[str, object] = {
            "version": "v3",  # RFC 5652 §5.1: eContentType other than id-data
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_info_der)},
            "signer_infos": [signer_info],
        }
        if request["cert_req"].native:  # RFC 3161 §2.4.1: certReq asks for the TSA certificate in the token
            signed_data_fields["certificates"] = [self._cert, *self._chain]
        token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data_fields)})
        return bytes(Asn1TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())

    def _signing_certificate_v2(self) -> tsp.SigningCertificateV2:
        return tsp.SigningCertificateV2(
            {
                "certs": [
                    {
                        "cert_hash": hashlib.sha256(self._cert.dump()).digest(),
                        "issuer_serial": {
                            "issuer": [asn1_x509.GeneralName({"directory_name": self._cert.issuer})],
                            "serial_number": self._cert.serial_number,
                        },
                    }
                ]
            }
        )

    def _sign(self, data: bytes) -> tuple[algos.SignedDigestAlgorithm, bytes]:
        key = self._issued.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # RFC 5753 §2.1.1 / RFC 5758 §3.2: ecdsa-with-SHA256, parameters absent.
            return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}), key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            # RFC 3370 §3.2 / RFC 4055 §5: sha256WithRSAEncryption (PKCS #1 v1.5), NULL parameters.
            algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
            return algorithm, key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise TypeError(f"unsupported TSA key {type(key).__name__}")  # pragma: no cover - pki.SigningKey is RSA | EC


def _rejection(fail_info: str, text: str) -> bytes:
    """A TimeStampResp with status ``rejection``, one PKIFailureInfo bit and a free-text reason (RFC 3161 §2.4.2)."""
    status = {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}
    return bytes(Asn1TimeStampResp({"status": status}).dump())
