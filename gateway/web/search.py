"""Searching the log as people look for things: an agency by name, a document by part of its number.

Newest first, with the total and numbered pages; refused entries carry their stored code and
reason on the row; each entry opens on its own page with its inclusion proof.  The auditors' own
page views (each one an entry) are left out unless asked for, or they would bury everything else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import request
from sqlalchemy.engine import Connection

from gateway.api.auditors import Auditor, record_read
from gateway.api.paging import whole_number
from gateway.audit.involving import involving
from gateway.audit.periods import PRESETS
from gateway.services import services
from gateway.store.db import fold_sql, fold_text, without_marks
from gateway.store.tables import agencies, audit_entries, audit_search, documents
from gateway.web.blueprint import auditor_page, bp, page
from gateway.web.i18n import CATEGORIES, EVENT_NAMES
from gateway.web.periods import chosen_period
from gateway.web.reasons import PageRefusal

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
READS = ("auditor.search", "auditor.timeline", "auditor.entry", "auditor.checkpoint", "auditor.statistics")
OUTCOMES = ("accepted", "refused", "ok")
MAX_TEXT = 200
MAX_DOCUMENTS = 500  # documents a partial number may stand for


@dataclass(frozen=True)
class AgencyChoice:
    code: str
    name: str


def agency_choices(conn: Connection) -> list[AgencyChoice]:
    rows = conn.execute(sa.select(agencies.c.code, agencies.c.name).order_by(agencies.c.name)).all()
    return [AgencyChoice(str(r.code), str(r.name)) for r in rows]


def _contains(conn: Connection, column: Any, text: str) -> Any:
    """Case-insensitive "contains" in any script, with the user's % and _ taken literally."""
    return fold_sql(conn, column).contains(fold_text(text), autoescape=True)


def _matching_agencies(conn: Connection, text: str) -> list[str]:
    """A code typed or picked exactly is that agency; otherwise every agency whose name or code contains it.

    Matched here rather than in SQL: the registry is a few hundred rows, and Python folds Vietnamese
    the same way on every database."""
    choices = agency_choices(conn)
    if any(c.code == text for c in choices):
        return [text]
    wanted = fold_text(text) or ""
    if wanted == without_marks(wanted):  # typed without marks ("quan 4"): compare names without theirs
        return [c.code for c in choices if wanted in without_marks(c.name) or wanted in without_marks(c.code)]
    return [c.code for c in choices if wanted in (fold_text(c.name) or "") or wanted in (fold_text(c.code) or "")]


def _text(name: str) -> str:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_TEXT:
        raise PageRefusal("invalid-request", "text-too-long", name=name, limit=MAX_TEXT)
    return value


def _filters(conn: Connection) -> tuple[list[Any], dict[str, Any]]:
    """The query's conditions, and what the page says about them (an agency name that matched nothing)."""
    where: list[Any] = []
    notes: dict[str, Any] = {}
    period = chosen_period(default=None)
    notes["period"] = period
    if period is not None:
        start, end = period.bounds
        where += [
            audit_search.c.time_us >= int(start.timestamp() * 1e6),
            audit_search.c.time_us < int(end.timestamp() * 1e6),
        ]
    if agency := _text("agency"):
        codes = _matching_agencies(conn, agency)
        notes["agency_codes"] = codes
        if not codes:
            notes["no_agency"] = agency
        where.append(involving(codes, claimed=request.args.get("claimed") == "1"))
    if document := _text("document"):
        # Deliveries and statuses name the document by its gateway id only: find the ids first.
        ids = (
            sa.select(documents.c.id)
            .where(
                sa.or_(
                    _contains(conn, documents.c.document_id, document),
                    documents.c.id.startswith(document.lower(), autoescape=True),
                )
            )
            .limit(MAX_DOCUMENTS)
        )
        where.append(
            sa.or_(
                audit_search.c.document.in_(list(conn.execute(ids).scalars())),
                _contains(conn, audit_search.c.document_id, document),  # refused documents were never stored
            )
        )
    category = request.args.get("category", "")
    if category:
        if category not in CATEGORIES:
            raise PageRefusal("invalid-request", "unknown-category", choices=", ".join(CATEGORIES))
        if category == "refusals":
            where.append(audit_search.c.outcome == "refused")
        else:
            where.append(sa.or_(*(audit_search.c.event.startswith(p, autoescape=True) for p in CATEGORIES[category])))
    if event := _text("event"):  # an exact event name, as the API takes it
        where.append(audit_search.c.event == event)
    outcome = request.args.get("outcome", "")
    if outcome:
        if outcome not in OUTCOMES:
            raise PageRefusal("invalid-request", "unknown-outcome", choices=", ".join(OUTCOMES))
        where.append(audit_search.c.outcome == outcome)
    if request.args.get("reads") != "1" and not event and category != "auditors":
        where.append(audit_search.c.event.not_in(READS))
    return where, notes


def _page_number(pages: int) -> int:
    wanted = request.args.get("page", "1")
    if wanted == "last":
        return pages
    try:
        number = whole_number(wanted)
    except ValueError:
        raise PageRefusal("invalid-request", "page-not-number") from None
    if not 1 <= number <= MAX_PAGE:
        raise PageRefusal("invalid-request", "page-out-of-range", limit=MAX_PAGE)
    return min(number, pages)


def _rows(conn: Connection, where: list[Any], total: int, number: int) -> list[Any]:
    """Page ``number`` of the matches, newest first.  Pages past the middle are read from the oldest end,
    so the last page costs what the first does."""
    skip = (number - 1) * PAGE_SIZE
    base = sa.select(audit_search.c.idx, audit_entries.c.body).join(
        audit_entries, audit_entries.c.idx == audit_search.c.idx
    )
    base = base.where(*where)
    if skip <= total // 2:
        return list(conn.execute(base.order_by(audit_search.c.idx.desc()).offset(skip).limit(PAGE_SIZE)))
    size = min(PAGE_SIZE, total - skip)
    from_oldest = total - skip - size
    found = list(conn.execute(base.order_by(audit_search.c.idx).offset(from_oldest).limit(size)))
    return found[::-1]


@bp.get("/search")
@auditor_page
def search(auditor: Auditor) -> str:
    with services().db.read() as conn:
        where, notes = _filters(conn)
        total = int(conn.execute(sa.select(sa.func.count()).select_from(audit_search).where(*where)).scalar_one())
        pages = max(1, math.ceil(total / PAGE_SIZE))
        number = _page_number(pages)
        rows = _rows(conn, where, total, number) if total else []
        choices = agency_choices(conn)
    names = {c.code: c.name for c in choices}
    record_read(auditor, "auditor.search", "workbench " + request.query_string.decode()[:480])
    items = [{"index": int(r.idx), "entry": json.loads(bytes(r.body))} for r in rows]
    args = {k: v for k, v in request.args.items() if k != "page"}

    def link(n: int) -> str:
        return "?" + urlencode({**args, "page": n})

    return page(
        "search.html",
        items=items,
        args=request.args,
        max_text=MAX_TEXT,
        total=total,
        number=number,
        pages=pages,
        link=link,
        agencies=choices,
        names=names,
        categories=list(CATEGORIES),
        outcomes=OUTCOMES,
        presets=PRESETS,
        period=notes["period"],
        no_agency=notes.get("no_agency"),
        known_events=sorted(EVENT_NAMES["en"]),
    )
