"""Cursor paging parameters, read the same way by every listing: ``after`` (a cursor) and ``limit``."""

from __future__ import annotations

from flask import request

from gateway.policy import Refusal

MAX_CURSOR = 2**63 - 1  # the databases' BIGINT


def page_parameters(*, default_limit: int, max_limit: int, first: int = 0) -> tuple[int, int]:
    """``(after, limit)``; anything malformed or out of range is refused, not quietly changed: a client
    asking for 10 000 and given 200 would take the page for the whole list."""
    try:
        after = int(request.args.get("after", str(first)))
        limit = int(request.args.get("limit", str(default_limit)))
    except ValueError:
        raise Refusal("invalid-request", "after and limit must be whole numbers") from None
    if not first <= after <= MAX_CURSOR or not 1 <= limit <= max_limit:
        raise Refusal(
            "invalid-request", f"after must be a cursor from next_after (≥ {first}) and limit between 1 and {max_limit}"
        )
    return after, limit
