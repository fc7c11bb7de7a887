"""Documents for benchmarks: the repository's edXML sample, optionally carrying an attachment of a chosen size."""

from __future__ import annotations

import base64
import os

from lxml import etree

from bench.deployment import ROOT
from gateway.documents.edxml import q

SAMPLE = ROOT / "examples" / "cong-van.edxml"


def with_attachment(unsigned: bytes, size: int, *, name: str = "phu-luc.pdf") -> bytes:
    """The document with one more attachment of ``size`` random bytes (base64 inside, as edXML carries them)."""
    if size <= 0:
        return unsigned
    root = etree.fromstring(unsigned, etree.XMLParser(huge_tree=True))
    manifest = root.find(f"{q('edXMLEnvelope')}/{q('edXMLBody')}/{q('edXMLManifest')}")
    encoded = root.find(q("AttachmentEncoded"))
    assert manifest is not None and encoded is not None, "the sample lost its manifest or AttachmentEncoded"
    cid = f"cid:{len(encoded) + 1}"
    reference = etree.SubElement(manifest, q("Reference"))
    for field, value in (("ContentId", cid), ("ContentType", "application/pdf"), ("AttachmentName", name)):
        etree.SubElement(reference, q(field)).text = value
    attachment = etree.SubElement(encoded, q("Attachment"))
    for field, value in (("ContentId", cid), ("AttachmentName", name), ("ContentType", "application/pdf")):
        etree.SubElement(attachment, q(field)).text = value
    raw = os.urandom(size * 3 // 4)
    etree.SubElement(attachment, q("ContentTransferEncoded")).text = base64.encodebytes(raw).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
