"""One evidence package per document, and its offline check at the timestamped signing time.

The package is a zip in the spirit of ASiC-E (ETSI EN 319 162: a ``mimetype`` entry first, stored,
then the signed data and the signatures and validation data that vouch for it) holding exactly what
a court or an auditor needs without the gateway: the signed bytes, the gateway's seal, the signer's
chain, the OCSP response or CRL the gateway relied on, the RFC 3161 token with the document's
inclusion path in the token's batch, and the Merkle receipt of its audit entries.

:func:`verify_package` checks every part with pinned trust only (anchors, the gateway's seal
certificate, optionally the audit log's verifier key) and with no network, as of the timestamp's
``genTime``: a certificate that expired or was revoked *after* that moment still verifies, and the
report says so.  Each failure names the part it is about.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from gateway.audit.checkpoint import NoteVerifier
from gateway.audit.merkle import verify_inclusion
from gateway.audit.receipt import verify_receipt
from gateway.audit.witness_policy import WitnessPolicy
from gateway.documents import edxml, xmlsafe
from gateway.documents.offline import check_seal
from gateway.documents.seal import SealFacts
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    find_signature,
    signature_value,
)
from gateway.json_input import parse_json, saved_problem
from gateway.policy import Refusal
from gateway.trust import crl, ocsp
from gateway.trust.chain import TrustStore
from gateway.trust.pki import fingerprint
from gateway.trust.status import CertStatus
from gateway.trust.timestamper import signature_leaf
from gateway.trust.timestamps import verify_timestamp

FORMAT = "interconnect-gateway-evidence/1"
MIMETYPE = "application/vnd.etsi.asic-e+zip"
MAX_PACKAGE_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 128 * 1024 * 1024
_PARENT = f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}"

DOCUMENT = "document.edxml"
SEAL = "seal.xml"
CHAIN = "certificates/signer-chain.pem"
STATUS = "revocation/status.der"
STAMP = "timestamp/token.tsr"
RECEIPT = "receipt.json"
VKEY = "audit.vkey"
MANIFEST = "META-INF/manifest.json"


@dataclass(frozen=True)
class EvidenceParts:
    document_uuid: str
    kind: str
    document: bytes
    seal: bytes
    signer_chain_pem: str
    status_kind: str | None  # "ocsp" | "crl" | None when status was unknown and accepted by configuration
    status: bytes | None
    status_flag: str | None
    token: bytes
    batch_root: bytes
    batch_size: int
    leaf_index: int
    inclusion_path: Sequence[bytes]
    receipt: dict[str, Any]
    audit_vkey: str


def build_package(parts: EvidenceParts) -> bytes:
    files: dict[str, bytes] = {
        DOCUMENT: parts.document,
        SEAL: parts.seal,
        CHAIN: parts.signer_chain_pem.encode(),
        STAMP: parts.token,
        RECEIPT: json.dumps(parts.receipt, ensure_ascii=False, indent=1).encode(),
        VKEY: parts.audit_vkey.encode(),
    }
    if parts.status is not None:
        files[STATUS] = parts.status
    manifest = {
        "format": FORMAT,
        "document": parts.document_uuid,
        "kind": parts.kind,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        "status": {"source": parts.status_kind, "flag": parts.status_flag},
        "timestamp": {
            "covers": "RFC 9162 leaf hash of the decoded ds:SignatureValue, in a Merkle tree whose root is the "
            "token's message imprint",
            "batch_root": parts.batch_root.hex(),
            "batch_size": parts.batch_size,
            "leaf_index": parts.leaf_index,
            "inclusion_path": [h.hex() for h in parts.inclusion_path],
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


# --- offline verification ------------------------------------------------------------------------


class PartRefusal(Refusal):
    """A refusal about one named part of the package."""

    def __init__(self, part: str, refusal: Refusal) -> None:
        super().__init__(refusal.code, refusal.reason)
        self.part = part


def _part(name: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one part's check so that any failure, a refusal or unreadable input, names the part."""
    try:
        return check(*args, **kwargs)
    except PartRefusal:
        raise
    except Refusal as refusal:
        raise PartRefusal(name, refusal) from None
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise PartRefusal(
            name, Refusal("evidence-malformed", f"{name} cannot be read ({type(exc).__name__})")
        ) from None


def _open(data: bytes) -> tuple[dict[str, bytes], dict[str, Any]]:
    if len(data) > MAX_PACKAGE_BYTES:
        raise Refusal("evidence-malformed", f"the package is larger than {MAX_PACKAGE_BYTES} bytes")
    if data[:1] == b"{":  # a problem+json answer saved where the package should be (curl -o)
        said = saved_problem(data) or "JSON"
        raise Refusal("evidence-malformed", f"this is an error answer from the gateway, not a package ({said})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > 32 or sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
                raise Refusal("evidence-malformed", "the package holds too many or too large files")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):  # readers disagree on which of two same-named entries counts
                raise Refusal("evidence-malformed", "the package holds two entries with the same name")
            if not infos or infos[0].filename != "mimetype" or infos[0].compress_type != zipfile.ZIP_STORED:
                raise Refusal("evidence-malformed", "the first entry must be the mimetype, stored (ASiC)")
            files = {i.filename: archive.read(i) for i in infos}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Refusal("evidence-malformed", f"not a readable zip file ({exc})") from None
    if files.get("mimetype") != MIMETYPE.encode():
        raise Refusal("evidence-malformed", f"the mimetype entry is not {MIMETYPE}")
    try:
        manifest = parse_json(files[MANIFEST])
    except (KeyError, ValueError):
        raise Refusal("evidence-malformed", f"{MANIFEST} is missing or not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Refusal("evidence-malformed", f"{MANIFEST} is not {FORMAT}")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise Refusal("evidence-malformed", f"{MANIFEST} lists no files")
    for name in (DOCUMENT, SEAL, CHAIN, STAMP, RECEIPT):
        if name not in listed or name not in files:
            raise PartRefusal(name, Refusal("evidence-incomplete", f"{name} is missing from the package"))
    for name, digest in listed.items():
        if name not in files or hashlib.sha256(files[name]).hexdigest() != digest:
            raise PartRefusal(name, Refusal("evidence-manifest", f"{name} does not match the manifest's SHA-256"))
    extra = set(files) - set(listed) - {"mimetype", MANIFEST}
    if extra:
        raise Refusal("evidence-malformed", f"files not in the manifest: {', '.join(sorted(extra))}")
    return files, manifest


def _hex_list(value: Any) -> list[bytes]:
    if not isinstance(value, list):
        raise Refusal("evidence-malformed", "inclusion_path must be a list")
    try:
        return [bytes.fromhex(str(h)) for h in value]
    except ValueError:
        raise Refusal("evidence-malformed", "inclusion_path holds something that is not hex") from None


def _signing_time(files: dict[str, bytes], manifest: dict[str, Any], signature_value: bytes, anchors: Any) -> Any:
    stamp = manifest.get("timestamp")
    if not isinstance(stamp, dict):
        raise Refusal("evidence-malformed", "the manifest has no timestamp section")
    try:
        root = bytes.fromhex(str(stamp["batch_root"]))
        size, index = int(stamp["batch_size"]), int(stamp["leaf_index"])
    except (KeyError, ValueError, TypeError):
        raise Refusal("evidence-malformed", "the manifest's timestamp section is malformed") from None
    path = _hex_list(stamp.get("inclusion_path"))
    if not verify_inclusion(index, size, signature_leaf(signature_value), path, root):
        raise Refusal(
            "timestamp-mismatch", "the document's signature value is not in the timestamped batch (inclusion fails)"
        )
    return verify_timestamp(files[STAMP], root, anchors)


def _status_at(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    facts: SealFacts,
    signer: x509.Certificate,
    issuer: x509.Certificate,
    freshness: int,
) -> CertStatus | None:
    """The signer's status as the gateway relied on it: the evidence the *seal* names (the manifest is
    not signed), fresh at the moment of receipt the seal attests."""
    section = manifest.get("status") if isinstance(manifest.get("status"), dict) else {}
    source = section.get("source") if isinstance(section, dict) else None
    at = facts.received_at
    if facts.signer_status_sha256 is None:
        if STATUS in files:
            raise Refusal("evidence-malformed", "the package holds a status the seal does not name")
        return None
    if STATUS not in files:
        raise Refusal("evidence-incomplete", "the seal names the signer's status evidence, which is not in the package")
    if hashlib.sha256(files[STATUS]).hexdigest() != facts.signer_status_sha256:
        raise Refusal("evidence-status", "the status evidence is not the one the seal names")
    if source == "ocsp":
        status = ocsp.verify_response(files[STATUS], signer, issuer, nonce=None, now=at, max_age=freshness)
    elif source == "crl":
        status = crl.verify_crl(files[STATUS], signer, issuer, now=at, max_age=freshness)
    else:
        raise Refusal("evidence-malformed", f"unknown revocation evidence kind {source!r}")
    if status.state == "revoked" and (status.revoked_at is None or status.revoked_at <= at):
        raise Refusal(
            "certificate-revoked", f"the signer's certificate was revoked at {status.revoked_at} (before signing)"
        )
    if status.state == "unknown":
        raise Refusal("certificate-status-unknown", "the kept status evidence says the certificate is unknown")
    return status


def verify_package(
    data: bytes,
    *,
    anchors: Sequence[x509.Certificate],
    gateway_certs: Sequence[x509.Certificate],
    vkey: str | None = None,
    freshness_seconds: int = 3600,
    now: datetime | None = None,
    policy: WitnessPolicy | None = None,
) -> dict[str, Any]:
    """A report: ``verdict`` valid, invalid (with the ``part``, ``code`` and ``reason``) or indeterminate
    (everything holds but the signer's revocation status was never established).  With ``policy`` (C2SP
    tlog-policy) the receipt's checkpoint must also carry its quorum of witness cosignatures."""
    report: dict[str, Any] = {"verdict": "invalid"}
    current = now or datetime.now(UTC)
    try:
        if not gateway_certs:
            raise Refusal("seal-unpinned", "pin the gateway's seal certificate with --gateway-cert")
        if not vkey and policy is None:
            raise Refusal(
                "vkey-unpinned",
                "pin the audit log's verifier key with --vkey (published by the gateway: `gateway audit vkey`); "
                "a key taken from the package proves nothing",
            )
        trust = TrustStore(anchors)
        files, manifest = _open(data)
        report["document"] = manifest.get("document")
        document = files[DOCUMENT]
        chain = _part(CHAIN, x509.load_pem_x509_certificates, files[CHAIN]) if files[CHAIN] else []
        if not chain:
            raise PartRefusal(CHAIN, Refusal("evidence-incomplete", "the signer's chain is empty"))
        signer = chain[0]
        root = _part(DOCUMENT, xmlsafe.parse, document)
        signature = find_signature(root)
        if signature is None:
            raise PartRefusal(DOCUMENT, Refusal("signature-missing", "the document carries no signature"))
        stamp = _part(STAMP, _signing_time, files, manifest, _part(DOCUMENT, signature_value, signature), anchors)
        signed_at = stamp.gen_time
        report["signing_time"] = signed_at.isoformat()
        report["timestamp_authority"] = stamp.tsa_subject
        verifier = EnvelopedSignatureVerifier(trust, SignatureProfile(), _PARENT)
        signed = _part(DOCUMENT, verifier.verify, document, root, [signer], at=signed_at)
        issuer = signed.chain.issuer if signed.chain is not None else signer
        report["signer"] = signer.subject.rfc4514_string()
        report["signer_sha256"] = fingerprint(signer)
        kind = manifest.get("kind", "document")
        sender = (
            edxml.read_document_header(signed.root).sender
            if kind == "document"
            else edxml.read_status_header(signed.root).sender
        )
        report["sender"] = sender
        facts = _part(SEAL, check_seal, files[SEAL], document, trust, gateway_certs, fingerprint(signer), at=signed_at)
        if facts.sender != sender:
            raise PartRefusal(
                SEAL, Refusal("seal-mismatch", f"the seal names sender {facts.sender}, the document {sender}")
            )
        if facts.document_uuid != manifest.get("document") or facts.kind != kind:
            raise PartRefusal(SEAL, Refusal("seal-mismatch", "the seal is about another gateway document"))
        delay = (signed_at - facts.received_at).total_seconds()
        if delay < -300:  # a token cannot predate the receipt it follows (beyond clock skew)
            raise PartRefusal(
                STAMP,
                Refusal(
                    "timestamp-mismatch",
                    f"the timestamp ({signed_at:%Y-%m-%d %H:%M:%S}) is {-delay:.0f} s before the sealed receipt time",
                ),
            )
        report["received_at"] = facts.received_at.isoformat()
        status = _part(STATUS, _status_at, files, manifest, facts, signer, issuer, freshness_seconds)
        if status is None:
            report["revocation"] = {"state": "not-established", "flag": facts.signer_status_flag}
        else:
            report["revocation"] = {
                "state": status.state,
                "source": status.source,
                "this_update": status.this_update.isoformat(),
                "responder": status.responder,
            }
        report["recipients"] = list(facts.recipients)
        receipt = _part(RECEIPT, _receipt, files, vkey, facts, policy)
        report["audit"] = receipt
        notes = []
        if signer.not_valid_after_utc < current:
            notes.append(f"certificate-expired-after-signing:{signer.not_valid_after_utc.date().isoformat()}")
        if delay > 300:
            notes.append(f"timestamp-delayed:{delay:.0f}")
        if facts.signer_status_flag:
            notes.append(f"status-flagged:{facts.signer_status_flag}")
        report["notes"] = notes
    except PartRefusal as refusal:
        report.update(part=refusal.part, code=refusal.code, reason=refusal.reason)
        return report
    except Refusal as refusal:
        report.update(part="package", code=refusal.code, reason=refusal.reason)
        return report
    except Exception as exc:  # an offline tool answers with a report, never a traceback
        report.update(part="package", code="evidence-malformed", reason=f"cannot be checked ({type(exc).__name__})")
        return report
    settled = report["revocation"]["state"] == "good" and not facts.signer_status_flag
    report["verdict"] = "valid" if settled else "indeterminate"
    return report


def _receipt(files: dict[str, bytes], vkey: str | None, facts: Any, policy: WitnessPolicy | None) -> dict[str, Any]:
    try:
        receipt = parse_json(files[RECEIPT])
        verifier = NoteVerifier.parse(vkey) if vkey else None
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Refusal("receipt-invalid", "the receipt or the audit log's verifier key cannot be read") from None
    if not isinstance(receipt, dict):
        raise Refusal("receipt-invalid", "the receipt is not a JSON object")
    # Every entry included in the signed (and, with a policy, witnessed) log, about receipt["document"].
    result = verify_receipt(receipt, verifier, policy)
    if result["verdict"] != "valid":
        raise Refusal(result.get("code", "receipt-invalid"), result.get("reason", "the receipt does not verify"))
    sealed = [e for e in receipt["entries"] if int(e["index"]) == facts.audit_index]
    if not sealed:
        raise Refusal("receipt-invalid", f"the receipt does not include the sealed audit entry {facts.audit_index}")
    entry = parse_json(base64.b64decode(sealed[0]["entry"]))
    # A status message's entries are filed under the document it answers; the message is named in each.
    about = entry.get("message") if facts.kind == "status" else entry.get("document")
    if about != facts.document_uuid or entry.get("sha256") != facts.sha256:
        raise Refusal("receipt-invalid", "the sealed audit entry is about another document or other bytes")
    found = {"checkpoint_size": result["checkpoint_size"], "origin": result["origin"], "entries": result["entries"]}
    if "cosigned_by" in result:
        found["cosigned_by"] = result["cosigned_by"]
    return found
