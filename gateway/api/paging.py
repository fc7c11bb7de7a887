"""Cursor paging parameters, read the same way by every listing: ``after`` (a cursor) and ``limit``."""

from __future__ import annotations

import re

from flask import request

from gateway.policy import Refusal

MAX_CURSOR = 2**63 - 1  # the databases' BIGINT
_DIGITS = re.compile(r"[0-9]{1,20}")


def whole_number(text: str) -> int:
    """ASCII digits only: ``int()`` also takes ``٣``, ``1_9`` and `` 3 ``, so one value had many
    spellings in the access log and in audited reads (issue 11 review, round 2); ValueError otherwise."""
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{text[:20]!r} is not a whole number in ASCII digits")
    return int(text)


def page_parameters(*, default_limit: int, max_limit: int, first: int = 0) -> tuple[int, int]:
    """``(after, limit)``; anything malformed or out of range is refused, not quietly changed: a client
    asking for 10 000 and given 200 would take the page for the whole list."""
    try:
        after = whole_number(request.args["after"]) if "after" in request.args else first
        limit = whole_number(request.args["limit"]) if "limit" in request.args else default_limit
    except ValueError:
        raise Refusal("invalid-request", "after and limit must be whole numbers") from None
    if not first <= after <= MAX_CURSOR or not 1 <= limit <= max_limit:
        raise Refusal(
            "invalid-request", f"after must be a cursor from next_after (≥ {first}) and limit between 1 and {max_limit}"
        )
    return after, limit
