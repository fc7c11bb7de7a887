"""Verifying a document, and optionally its seal, with nothing but the files and trust anchors.

Recipients and auditors run this (``gateway verify``) long after the exchange, without the
gateway's database: the signer is pinned to a certificate given on the command line or, by
default, to the one the signature carries, which must still chain to a trust anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509

from gateway.documents import edxml, schema, xmlsafe
from gateway.documents.seal import check_document_matches, verify_seal
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    embedded_certificates,
    find_signature,
)
from gateway.policy import Refusal
from gateway.trust.chain import TrustStore

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
        root = xmlsafe.parse(document)
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
        if kind == "document":
            header = edxml.read_document_header(signed.root)
            report.update(sender=header.sender, recipients=list(header.recipients), document_id=header.document_id)
        else:
            status = edxml.read_status_header(signed.root)
            report.update(
                sender=status.sender, status_code=status.status_code, response_for=status.response_for_document_id
            )
        if seal is not None:
            seal_root = xmlsafe.parse(seal)
            seal_signature = find_signature(seal_root)
            pinned = (
                list(gateway_certs)
                if gateway_certs
                else (embedded_certificates(seal_signature) if seal_signature is not None else [])
            )
            facts = verify_seal(seal, trust, pinned)
            check_document_matches(facts, document)
            if facts.signer_certificate_sha256 != signed.signer_fingerprint:
                raise Refusal("seal-mismatch", "the seal names a different signing certificate than the document's")
            if facts.sender != report["sender"]:
                raise Refusal("seal-mismatch", f"the seal names sender {facts.sender}, the document {report['sender']}")
            if kind == "document" and facts.document_id != report["document_id"]:
                raise Refusal("seal-mismatch", "the seal names a different DocumentId")
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
