"""The 12-digit personal identification number (số định danh cá nhân, Circular 59/2021/TT-BCA).

Digits: province of birth registration (3), century and gender (1: 0/1 for 1900s male/female,
2/3 for 2000s, 4/5 for 2100s, …), last two digits of the birth year (2), random (6); no check
digit.  Unknown province prefixes are accepted (provinces merged in 2025).  The full number is
never written to logs (masked to the last 4 digits) nor to the audit log (keyed hash, per
deployment, so it stays searchable without being readable).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, date, datetime

from gateway.policy import Refusal

CODE = "personal-id-invalid"
_DIGITS = re.compile(r"[0-9]{12}")
_BIRTH_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")


def birth_year_of(personal_id: str) -> int:
    century = 1900 + (int(personal_id[3]) // 2) * 100
    return century + int(personal_id[4:6])


def check_personal_id(personal_id: object, birth_date: object = None, *, today: date | None = None) -> str:
    """Return the number when well-formed and consistent with ``birth_date`` (``YYYYMMDD``)."""
    today = today or datetime.now(UTC).date()
    if not isinstance(personal_id, str) or not _DIGITS.fullmatch(personal_id):
        raise Refusal(CODE, "the personal ID must be exactly 12 digits")
    year = birth_year_of(personal_id)
    if year > today.year:
        raise Refusal(CODE, "the century/gender digit or birth-year digits give a birth year in the future")
    if birth_date is not None and birth_date != "":
        match = _BIRTH_DATE.fullmatch(str(birth_date))
        if not match:
            raise Refusal(CODE, "the birth date claim must read YYYYMMDD")
        try:
            born = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise Refusal(CODE, "the birth date claim is not a real date") from None
        if born.year != year:
            raise Refusal(CODE, "the personal ID's century and birth-year digits disagree with the birth date")
        if born > today:
            raise Refusal(CODE, "the birth date is in the future")
    return personal_id


def mask(personal_id: str) -> str:
    return "*" * (len(personal_id) - 4) + personal_id[-4:]


def hashed(personal_id: str, pepper: bytes) -> str:
    """Keyed hash for the audit log and for finding a citizen's own dossiers."""
    return hmac.new(pepper, personal_id.encode("ascii"), hashlib.sha256).hexdigest()
