"""The parts of an edXML document the gateway acts on, read from a tree.

Callers pass the tree the signature verifier returned (what was actually signed), never the raw
parse, so a wrapped or injected element cannot steer routing (DESIGN.md guarantee 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lxml import etree

from gateway.policy import Refusal

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_P = {"e": NS}

STATE_SECRET_LEVELS = frozenset({"Mật", "Tối mật", "Tuyệt mật"})
STATUS_CODES = {
    "01": "arrived",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "done",
    "13": "recall requested",
    "15": "recall/update accepted",
    "16": "recall/update refused",
}


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(root: etree._Element, path: str) -> str:
    found = root.find(path, _P)
    return (found.text or "").strip() if found is not None else ""


def _header(root: etree._Element) -> etree._Element:
    if root.tag != q("edXML"):
        raise Refusal("schema-invalid", "the root element must be edXML:edXML")
    header = root.find("e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader", _P)
    if header is None:
        raise Refusal("schema-invalid", "edXMLEnvelope/edXMLHeader/MessageHeader is missing")
    return header


@dataclass(frozen=True)
class DocumentHeader:
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    subject: str
    due_date: str | None
    security_classification: str | None

    @property
    def is_state_secret(self) -> bool:
        return self.security_classification in STATE_SECRET_LEVELS


@dataclass(frozen=True)
class StatusHeader:
    sender: str
    response_for_organ: str
    response_for_document_id: str
    status_code: str
    description: str
    timestamp: str


def due_day(text: str | None) -> date | None:
    """A ``DueDate`` (``YYYY/MM/DD``) as a day, or None: the schema's pattern also admits 0000/00/00 and
    2026/13/45, which are no day.  Submission refuses those; reports read stored ones as no due date."""
    if not text or len(text) != 10:
        return None
    try:
        day = date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return None
    return day if day.year >= 1900 else None


def read_document_header(root: etree._Element) -> DocumentHeader:
    header = _header(root)
    recipients = tuple((el.text or "").strip() for el in header.findall("e:To/e:OrganId", _P))
    if len(set(recipients)) != len(recipients):
        raise Refusal("schema-invalid", "the same OrganId appears twice in To")
    classification = _text(header, "e:OtherInfo/e:SecurityClassification") or None
    due = _text(header, "e:DueDate") or None
    if due is not None and due_day(due) is None:
        # The schema's pattern admits 0000/00/00 and 2026/13/45; reports reckon lateness from this day.
        raise Refusal("schema-invalid", f"DueDate {due[:20]!r} is not a day of the calendar (YYYY/MM/DD)")
    return DocumentHeader(
        sender=_text(header, "e:From/e:OrganId"),
        recipients=recipients,
        document_id=_text(header, "e:DocumentId"),
        subject=_text(header, "e:Subject"),
        due_date=due,
        security_classification=classification,
    )


@dataclass(frozen=True)
class DocumentFacts:
    """What a reader of the letter sees on its first page, beyond the routing header: its number and
    notation (số và ký hiệu), kind, date and place of issue, and who signed it for whom."""

    code_number: str
    code_notation: str
    type_name: str
    promulgation_date: str
    promulgation_place: str
    signer: str
    security_classification: str | None

    @property
    def number_and_notation(self) -> str:
        """As the letter itself prints it: ``1024/UBND-VX``."""
        return "/".join(part for part in (self.code_number, self.code_notation) if part)


def read_document_facts(root: etree._Element) -> DocumentFacts:
    header = _header(root)
    signer = ", ".join(
        part
        for part in (
            _text(header, "e:SignerInfo/e:Competence"),
            _text(header, "e:SignerInfo/e:Position"),
            _text(header, "e:SignerInfo/e:FullName"),
        )
        if part
    )
    return DocumentFacts(
        code_number=_text(header, "e:Code/e:CodeNumber"),
        code_notation=_text(header, "e:Code/e:CodeNotation"),
        type_name=_text(header, "e:DocumentType/e:TypeName"),
        promulgation_date=_text(header, "e:PromulgationInfo/e:PromulgationDate"),
        promulgation_place=_text(header, "e:PromulgationInfo/e:Place"),
        signer=signer,
        security_classification=_text(header, "e:OtherInfo/e:SecurityClassification") or None,
    )


def read_status_header(root: etree._Element) -> StatusHeader:
    header = _header(root)
    return StatusHeader(
        sender=_text(header, "e:From/e:OrganId"),
        response_for_organ=_text(header, "e:ResponseFor/e:OrganId"),
        response_for_document_id=_text(header, "e:ResponseFor/e:DocumentId"),
        status_code=_text(header, "e:StatusCode"),
        description=_text(header, "e:Description"),
        timestamp=_text(header, "e:Timestamp"),
    )


def claimed_document_id(root: etree._Element) -> str:
    """The DocumentId an unverified tree says it is (a status message: the one it answers), or "".

    Only for the audit entry of a refusal, so that an auditor can find "why was 1032/UBND-VX
    refused" by its number; never trusted for anything else."""
    try:
        header = _header(root)
    except Refusal:
        return ""
    return _text(header, "e:DocumentId") or _text(header, "e:ResponseFor/e:DocumentId")


def claimed_sender(root: etree._Element) -> str:
    """``From/OrganId`` of an unverified tree: only for refusing early a caller who is not the sender."""
    return _text(_header(root), "e:From/e:OrganId")
