"""Which audit entries involve an agency: the one definition the API and the workbench search share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from gateway.store.tables import audit_search


def involving(codes: Sequence[str], *, claimed: bool = False) -> Any:
    """Entries where one of ``codes`` sent, received or acted (a verified identity).

    ``claimed`` adds entries where a refused, unauthenticated request only *said* it was one of
    them (issue 13): worth seeing when investigating an attack on an agency, but never mixed into
    what the agency did unless the auditor asks."""
    columns = [audit_search.c.sender, audit_search.c.recipient, audit_search.c.actor]
    if claimed:
        columns.append(audit_search.c.claimed_actor)
    return sa.or_(*(column.in_(list(codes)) for column in columns))
