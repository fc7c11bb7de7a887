"""The gateway's seal: a separate signed XML binding what was received, from whom, for whom, when,
and at which audit index (schemas/seal.xsd).

It never goes inside the sender's document (signxml handles one signature per document, and the
sender's bytes must stay exactly as signed); a recipient keeps both and checks them together with
``gateway verify DOCUMENT --seal SEAL``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from gateway.documents import schema, xmlsafe
from gateway.documents.signing import sign_enveloped_lean
from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
from gateway.policy import Refusal
from gateway.trust.chain import TrustStore
from gateway.trust.pki import SigningKey

SEAL_NS = "urn:vn-gov:interconnect-gateway:seal:1"


def _q(name: str) -> str:
    return f"{{{SEAL_NS}}}{name}"


@dataclass(frozen=True)
class SealFacts:
    gateway: str
    document_uuid: str
    kind: str
    document_id: str
    sha256: str
    size: int
    sender: str
    recipients: tuple[str, ...]
    signer_certificate_sha256: str
    received_at: datetime
    audit_index: int
    signer_status_sha256: str | None = None  # the OCSP response or CRL the gateway relied on
    signer_status_flag: str | None = None  # why there was none, when accepted by configuration


def build_seal(facts: SealFacts, key: SigningKey, chain: Sequence[x509.Certificate]) -> bytes:
    root = etree.Element(_q("Seal"), nsmap={"seal": SEAL_NS})
    root.set("version", "1")
    values = [
        ("Gateway", facts.gateway),
        ("DocumentUuid", facts.document_uuid),
        ("Kind", facts.kind),
        ("DocumentId", facts.document_id),
        ("Sha256", facts.sha256),
        ("Size", str(facts.size)),
        ("Sender", facts.sender),
    ]
    for name, value in values:
        etree.SubElement(root, _q(name)).text = value
    recipients = etree.SubElement(root, _q("Recipients"))
    for code in facts.recipients:
        etree.SubElement(recipients, _q("Recipient")).text = code
    etree.SubElement(root, _q("SignerCertificateSha256")).text = facts.signer_certificate_sha256
    etree.SubElement(root, _q("ReceivedAt")).text = facts.received_at.isoformat(timespec="microseconds")
    etree.SubElement(root, _q("AuditIndex")).text = str(facts.audit_index)
    if facts.signer_status_sha256:
        etree.SubElement(root, _q("SignerStatusSha256")).text = facts.signer_status_sha256
    if facts.signer_status_flag:
        etree.SubElement(root, _q("SignerStatusFlag")).text = facts.signer_status_flag
    return sign_enveloped_lean(root, key, chain)


def verify_seal(
    seal: bytes, trust: TrustStore, gateway_certs: Sequence[x509.Certificate], *, at: datetime | None = None
) -> SealFacts:
    """Check the seal's signature (pinned to the gateway's certificates, chained to ``trust``) and read it."""
    root = xmlsafe.parse(seal, xmlsafe.XmlLimits(max_bytes=256 * 1024))
    schema.validate(root, "seal")
    verifier = EnvelopedSignatureVerifier(trust, SignatureProfile(), "")
    signed = verifier.verify(seal, root, gateway_certs, at=at).root

    def text(name: str) -> str:
        node = signed.find(_q(name))
        return (node.text or "") if node is not None else ""

    return SealFacts(
        gateway=text("Gateway"),
        document_uuid=text("DocumentUuid"),
        kind=text("Kind"),
        document_id=text("DocumentId"),
        sha256=text("Sha256"),
        size=int(text("Size") or 0),
        sender=text("Sender"),
        recipients=tuple(n.text or "" for n in signed.findall(f"{_q('Recipients')}/{_q('Recipient')}")),
        signer_certificate_sha256=text("SignerCertificateSha256"),
        received_at=datetime.fromisoformat(text("ReceivedAt")),
        audit_index=int(text("AuditIndex") or 0),
        signer_status_sha256=text("SignerStatusSha256") or None,
        signer_status_flag=text("SignerStatusFlag") or None,
    )


def check_document_matches(seal: SealFacts, document: bytes) -> None:
    digest = hashlib.sha256(document).hexdigest()
    if digest != seal.sha256:
        raise Refusal("seal-mismatch", f"the document's SHA-256 {digest} is not the sealed {seal.sha256}")
