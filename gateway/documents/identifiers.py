"""Agency identifiers and edXML DocumentIds, validated by form and otherwise kept as opaque strings.

Two forms are in use (DESIGN.md §3): QCVN 102:2016 ``000.00.00.H49`` (groups read right to left)
and Decision 20/2020/QĐ-TTg ``H55.242`` (up to 35 characters, first group ``[A-Y]\\d{2}``).  Codes
are case-sensitive as published; we never normalise them, so a stored code is exactly the one the
agency's own system sends.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

QCVN_102_FORM = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
DECISION_20_FORM = re.compile(r"[A-Y][0-9]{2}(?:\.[0-9A-Z]+)*")
MAX_AGENCY_CODE = 35
_DATE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")


def agency_code_form(code: str) -> str | None:
    """``"qcvn102"`` or ``"decision20"`` for a well-formed agency code, else ``None``."""
    if len(code) > MAX_AGENCY_CODE:
        return None
    if QCVN_102_FORM.fullmatch(code):
        return "qcvn102"
    if DECISION_20_FORM.fullmatch(code):
        return "decision20"
    return None


def is_agency_code(code: str) -> bool:
    return agency_code_form(code) is not None


def is_edxml_date(value: str) -> bool:
    """``yyyy/MM/dd`` naming a real calendar day."""
    match = _DATE.fullmatch(value)
    if not match:
        return False
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False

    return day <= calendar.monthrange(year, month)[1]


@dataclass(frozen=True)
class DocumentIdParts:
    organ_id: str
    date: str
    number_notation: str


def parse_document_id(value: str) -> DocumentIdParts | None:
    """Split ``{OrganId},{yyyy/MM/dd},{number}/{notation}``; ``None`` when it is not of that form."""
    parts = value.split(",")
    if len(parts) != 3:
        return None
    organ_id, date, number_notation = parts
    if not is_agency_code(organ_id) or not is_edxml_date(date) or not number_notation.strip():
        return None
    return DocumentIdParts(organ_id, date, number_notation)
