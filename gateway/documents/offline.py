"""Verifying a document, and optionally its seal, with nothing but the files and trust anchors.

Recipients and auditors run this (``gateway verify``) long after the exchange, without the
gateway's database.  Three things must hold before it says "valid", because each was once a way to
fool it (issue 9):

* the seal is signed by the gateway's *pinned* seal certificate — chaining to the anchors is not
  enough, every agency's certificate chains to the same anchors;
* the seal is not signed by the certificate that signed the document (a sender sealing its own
  document);
* the document's signer is bound to its ``From`` agency: by the seal, which names the signer's
  certificate fingerprint and the sender the gateway authenticated, or by a pinned ``--sender-cert``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography import x509

from gateway.documents import edxml, schema, xmlsafe
from gateway.documents.seal import SealFacts, check_document_matches, verify_seal
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    embedded_certificates,
    find_signature,
)
from gateway.policy import Refusal
from gateway.trust.chain import TrustStore
from gateway.trust.pki import fingerprint

_PARENT = f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}"


def verify_offline(
    document: bytes,
    anchors: Sequence[x509.Certificate],
    *,
    seal: bytes | None = None,
    sender_certs: Sequence[x509.Certificate] | None = None,
    gateway_certs: Sequence[x509.Certificate] | None = None,
    allow_rsa_sha1: bool = False,
) -> dict[str, Any]:
    report: dict[str, Any] = {"verdict": "invalid"}
    try:
        trust = TrustStore(anchors)
        root = xmlsafe.parse(document, xmlsafe.XmlLimits(max_bytes=len(document)))  # the auditor's file, any size
        is_status = root.find(f".//{edxml.q('MessageHeader')}/{edxml.q('StatusCode')}") is not None
        kind: schema.Kind = "status" if is_status else "document"
        report["kind"] = kind
        schema.validate(root, kind)
        signature = find_signature(root)
        candidates = (
            list(sender_certs) if sender_certs else (embedded_certificates(signature) if signature is not None else [])
        )
        verifier = EnvelopedSignatureVerifier(trust, SignatureProfile.for_deployment(allow_rsa_sha1), _PARENT)
        signed = verifier.verify(document, root, candidates)
        report["signature"] = signed.summary
        report["signer"] = signed.signer.subject.rfc4514_string()
        report["signer_sha256"] = signed.signer_fingerprint
        if kind == "document":
            header = edxml.read_document_header(signed.root)
            report.update(sender=header.sender, recipients=list(header.recipients), document_id=header.document_id)
        else:
            status = edxml.read_status_header(signed.root)
            report.update(
                sender=status.sender, status_code=status.status_code, response_for=status.response_for_document_id
            )
        if seal is None:
            if not sender_certs:
                raise Refusal(
                    "sender-unbound",
                    f"the signature is valid, but nothing binds its signer to {report['sender']}: pass the seal "
                    "with --seal and --gateway-cert, or pin the sender's certificate with --sender-cert",
                )
            report["bound_by"] = "pinned sender certificate"
        else:
            if not gateway_certs:
                raise Refusal(
                    "seal-unpinned",
                    "pin the gateway's seal certificate with --gateway-cert (published at "
                    "/.well-known/gateway-seal.pem): a seal's own certificate proves nothing",
                )
            facts = check_seal(seal, document, trust, gateway_certs, signed.signer_fingerprint)
            report["seal_signer_sha256"] = ", ".join(fingerprint(c) for c in gateway_certs[:1])
            if facts.sender != report["sender"]:
                raise Refusal("seal-mismatch", f"the seal names sender {facts.sender}, the document {report['sender']}")
            if kind == "document" and facts.document_id != report["document_id"]:
                raise Refusal("seal-mismatch", "the seal names a different DocumentId")
            report["bound_by"] = "gateway seal"
            report["seal"] = {
                "gateway": facts.gateway,
                "document_uuid": facts.document_uuid,
                "received_at": facts.received_at.isoformat(),
                "audit_index": facts.audit_index,
                "recipients": list(facts.recipients),
                "sha256": facts.sha256,
            }
    except Refusal as refusal:
        report.update(code=refusal.code, reason=refusal.reason)
        return report
    report["verdict"] = "valid"
    return report


def check_seal(
    seal: bytes,
    document: bytes,
    trust: TrustStore,
    gateway_certs: Sequence[x509.Certificate],
    document_signer_sha256: str,
    *,
    at: datetime | None = None,
) -> SealFacts:
    """The seal's facts, once it is shown to be the pinned gateway's and about this document and signer."""
    seal_signature = find_signature(xmlsafe.parse(seal, xmlsafe.XmlLimits(max_bytes=256 * 1024)))
    embedded = embedded_certificates(seal_signature) if seal_signature is not None else []
    pinned = {fingerprint(c) for c in gateway_certs}
    if document_signer_sha256 in pinned or any(fingerprint(c) == document_signer_sha256 for c in embedded):
        # Whatever was pinned, and whether or not the seal carries its certificate: a sender cannot seal
        # its own document.
        raise Refusal("seal-forged", "the seal is (or would be) signed by the document's own signer, not the gateway")
    if embedded and fingerprint(embedded[0]) not in pinned:
        raise Refusal(
            "seal-forged",
            f"the seal is signed by certificate {fingerprint(embedded[0])[:16]}…, not the pinned gateway certificate",
        )
    facts = verify_seal(seal, trust, list(gateway_certs), at=at)
    check_document_matches(facts, document)
    if facts.signer_certificate_sha256 != document_signer_sha256:
        raise Refusal("seal-mismatch", "the seal names a different signing certificate than the document's")
    return facts
