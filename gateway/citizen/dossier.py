"""Building a citizen's dossier (hồ sơ) as an edXML document the agencies' systems already understand.

The dossier travels like any official document: From the city's citizen portal agency, To the
handling agencies, with the verified identity attributes and the form in an attached
``ho-so.json`` (edXML has no element for them), plus the citizen's attachments.  The gateway signs
it with its own key, and it then takes the same submission path as agency documents.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.citizen.catalog import Procedure
from gateway.documents.edxml import NS, q
from gateway.identity.national_id import CitizenIdentity

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    content: bytes


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, q(name))
    if text is not None:
        element.text = text
    return element


def _organization(parent: etree._Element, tag: str, code: str, name: str) -> None:
    org = _sub(parent, tag)
    _sub(org, "OrganId", code)
    _sub(org, "OrganName", name[:255])


def build_dossier(
    *,
    portal: tuple[str, str],
    agencies: Sequence[tuple[str, str]],
    procedure: Procedure,
    citizen: CitizenIdentity,
    fields: Mapping[str, str],
    attachments: Sequence[Attachment],
    number: str,
    now: datetime,
    due: date,
) -> bytes:
    local = now.astimezone(LOCAL)
    today = local.strftime("%Y/%m/%d")
    root = etree.Element(q("edXML"), nsmap={"edXML": NS})
    envelope = _sub(root, "edXMLEnvelope")
    edxml_header = _sub(envelope, "edXMLHeader")
    header = _sub(edxml_header, "MessageHeader")
    _organization(header, "From", *portal)
    for agency_code, agency_name in agencies:
        _organization(header, "To", agency_code, agency_name)
    _sub(header, "DocumentId", f"{portal[0]},{today},{number}/HS")
    code = _sub(header, "Code")
    _sub(code, "CodeNumber", number)
    _sub(code, "CodeNotation", "HS")
    info = _sub(header, "PromulgationInfo")
    _sub(info, "PromulgationDate", today)
    doc_type = _sub(header, "DocumentType")
    _sub(doc_type, "Type", "2")
    _sub(doc_type, "TypeName", "Hồ sơ thủ tục hành chính")
    _sub(header, "Subject", f"Hồ sơ {procedure.code}: {procedure.name}"[:500])
    _sub(
        header,
        "Content",
        f"Hồ sơ nộp trực tuyến bởi công dân {citizen.full_name}, định danh mức {citizen.level}."[:500],
    )
    _sub(header, "DueDate", due.strftime("%Y/%m/%d"))
    _sub(_sub(header, "OtherInfo"), "Priority", "0")
    trace = _sub(edxml_header, "TraceHeaderList")
    hop = _sub(trace, "TraceHeader")
    _sub(hop, "OrganId", portal[0])
    _sub(hop, "Timestamp", local.strftime("%Y/%m/%d %H:%M:%S"))
    business = _sub(trace, "Bussiness")
    _sub(business, "BussinessDocType", "0")
    _sub(business, "BussinessDocReason", "Hồ sơ trực tuyến")

    form: dict[str, Any] = {
        "procedure": procedure.code,
        "applicant": {
            "SoDinhDanh": citizen.personal_id,
            "HoVaTen": citizen.full_name,
            "NgayThangNamSinh": citizen.birth_date,
            "level": citizen.level,
            "issuer": citizen.issuer,
        },
        "fields": dict(fields),
        "submitted_at": now.isoformat(),
    }
    files = [
        Attachment("ho-so.json", "application/json", json.dumps(form, ensure_ascii=False, indent=1).encode()),
        *attachments,
    ]
    manifest = _sub(_sub(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    encoded = _sub(root, "AttachmentEncoded")
    for n, item in enumerate(files, start=1):
        reference = _sub(manifest, "Reference")
        _sub(reference, "ContentId", f"cid:{n}")
        _sub(reference, "ContentType", item.content_type)
        _sub(reference, "AttachmentName", item.name)
        attachment = _sub(encoded, "Attachment")
        _sub(attachment, "ContentId", f"cid:{n}")
        _sub(attachment, "AttachmentName", item.name)
        _sub(attachment, "ContentType", item.content_type)
        _sub(attachment, "ContentTransferEncoded", base64.b64encode(item.content).decode())
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
