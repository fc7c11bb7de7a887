"""The auditor API: search the audit trail and export stretches of it.  Every read is itself audited.

The auditor role is granted by configuration (``GATEWAY_AUDITORS``) to named identities: a personal
ID number for auditors who log in with national electronic identity, or an agency code for a gateway
access token (tests, integrations).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request
from werkzeug.wsgi import wrap_file

from gateway.api.auth import bearer_token, refused_unauthenticated
from gateway.api.paging import page_parameters
from gateway.audit import AuditEvent, periods
from gateway.audit.bundle import write_bundle
from gateway.audit.checkpoints import LogInconsistent
from gateway.audit.involving import involving
from gateway.audit.statistics import as_csv
from gateway.citizen.service import citizen_actor
from gateway.identity.jws import parse_compact
from gateway.identity.national_id import CitizenIdentity
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.tables import audit_entries, audit_search

bp = Blueprint("auditors", __name__)
ROLE_MINIMUM_LEVEL = 2  # roles that read everyone's trail are not for level-1 (self-registered) accounts
MAX_PAGE = 200


@dataclass(frozen=True)
class Auditor:
    actor: str  # as it appears in the audit log: never a raw personal ID
    display: str


def require_role_level(citizen: CitizenIdentity) -> None:
    """Roles that read everyone's trail are not for level-1 (self-registered) national-ID accounts."""
    if citizen.level < ROLE_MINIMUM_LEVEL:
        raise Refusal(
            "level-insufficient",
            f"auditor and operator roles need a level-{ROLE_MINIMUM_LEVEL} national-ID account "
            f"(Decree 69/2024/NĐ-CP); this login is level {citizen.level}: log in again at level 2",
        )


def authenticated_in_role(allowed: frozenset[str], refusal: Refusal, refused_event: str) -> Auditor:
    """The caller, by a gateway token (an agency) or a national-ID token (a person), if ``allowed``.

    Any refusal, ``refusal`` included when the identity is not in ``allowed``, is audited as ``refused_event``.
    """
    svc = services()
    try:
        token = bearer_token("invalid-token")
        header = parse_compact(token, "invalid-token").header
        if header.get("kid") == svc.tokens.kid:  # the gateway's own access token: an agency
            agency = svc.tokens.verify(token)
            person, identity = Auditor(agency, agency), agency
        else:
            citizen = svc.national_id.verify(token)
            person, identity = (
                Auditor(citizen_actor(citizen), f"{citizen.full_name} ({citizen.masked_id})"),
                citizen.personal_id,
            )
    except Refusal as refused:  # nobody proved who they are: counted, summarised
        refused_unauthenticated(refused_event, refused)
        raise
    try:  # a verified identity refused its role: one entry naming it
        if header.get("kid") == svc.tokens.kid:
            found = svc.agencies.agency(person.actor)
            if found is None or not found.enabled:  # a disabled agency keeps no role
                raise Refusal("invalid-token", f"agency {person.actor} is not registered or is disabled")
        else:
            require_role_level(citizen)
        if identity not in allowed:
            raise refusal
    except Refusal as refused:
        svc.audit.refused(svc.db, refused_event, refused, actor=person.actor)
        raise
    return person


def authenticated_auditor() -> Auditor:
    return authenticated_in_role(
        services().config.auditor_identities,
        Refusal("not-an-auditor", "this identity has no auditor role (GATEWAY_AUDITORS)"),
        "auditor.refused",
    )


def record_read(auditor: Auditor, event: str, what: str) -> None:
    svc = services()
    svc.audit.record(svc.db, AuditEvent(event=event, outcome="ok", actor=auditor.actor, reason=what[:500]))


def time_bound(name: str) -> int | None:
    """The request's ``from``/``to`` (query or the workbench's form), see :mod:`gateway.audit.periods`."""
    return periods.time_bound(request.values.get(name), name)


def requested_period(now: datetime) -> tuple[datetime, datetime]:
    """The statistics period asked for: by default the last 30 days up to now."""
    start_us, end_us = time_bound("from"), time_bound("to")
    start = datetime.fromtimestamp(start_us / 1e6, UTC) if start_us is not None else now - timedelta(days=30)
    end = datetime.fromtimestamp(end_us / 1e6, UTC) if end_us is not None else now
    if start > end:
        raise Refusal("invalid-request", "from must not be after to")
    return start, end


def export_requested_range() -> tuple[IO[bytes], int, int]:
    """The bundle for the entries in ``from``..``to``, with a fresh checkpoint covering them all.

    It is written to a temporary file (in memory only while small) and streamed from there, so a
    whole-log export costs disk, not the server's memory.
    """
    start, end = time_bound("from"), time_bound("to")
    svc = services()
    with contextlib.suppress(LogInconsistent):  # the entries already signed are still exported
        svc.witnessed_checkpoint()
    with svc.db.read() as conn:
        found = periods.entries_between(conn, start, end)
        if found is None:
            raise Refusal("export-empty", "no audit entries in that time range")
        first, last = found
        file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed by the response
        try:
            write_bundle(conn, svc.checkpoints, int(first), int(last) + 1, file)
        except BaseException:
            file.close()
            raise
    file.seek(0)
    return file, int(first), int(last)


def zip_download(bundle: IO[bytes], name: str) -> Response:
    response = Response(
        wrap_file(request.environ, bundle, buffer_size=256 * 1024), mimetype="application/zip", direct_passthrough=True
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def search_query() -> tuple[sa.Select[tuple[int, bytes]], int, int]:
    """The auditor's filters as one query; also used by the web workbench."""
    after, limit = page_parameters(default_limit=50, max_limit=MAX_PAGE, first=-1)
    query = sa.select(audit_search.c.idx, audit_entries.c.body).join(
        audit_entries, audit_entries.c.idx == audit_search.c.idx
    )
    start, end = time_bound("from"), time_bound("to")
    if start is not None:
        query = query.where(audit_search.c.time_us >= start)
    if end is not None:
        query = query.where(audit_search.c.time_us < end)
    if agency := request.args.get("agency"):
        query = query.where(involving([agency], claimed=request.args.get("claimed") == "1"))
    for name in ("document", "document_id", "event", "outcome"):
        if value := request.args.get(name):
            query = query.where(getattr(audit_search.c, name) == value)
    query = query.where(audit_search.c.idx > after).order_by(audit_search.c.idx).limit(limit + 1)
    return query, after, limit


@bp.get("/v1/audit/entries")
def search() -> Response:
    auditor = authenticated_auditor()
    query, _after, limit = search_query()
    svc = services()
    with svc.db.read() as conn:
        rows = conn.execute(query).all()
    record_read(auditor, "auditor.search", request.query_string.decode()[:500])
    items = [{"index": int(r.idx), "entry": json.loads(bytes(r.body))} for r in rows[:limit]]
    return jsonify({"items": items, "next_after": int(rows[limit - 1].idx) if len(rows) > limit else None})


@bp.get("/v1/audit/export")
def export() -> Response:
    auditor = authenticated_auditor()
    bundle, first, last = export_requested_range()
    record_read(auditor, "auditor.export", request.query_string.decode()[:500])
    return zip_download(bundle, f"audit-{first}-{last}.zip")


@bp.get("/v1/audit/statistics")
def statistics() -> Response:
    """Per agency and period: received, acknowledged, done, on time/late, overdue, refused; JSON or CSV."""
    auditor = authenticated_auditor()
    now = datetime.now(UTC)
    start, end = requested_period(now)
    rows = services().statistics.figures(start, end, now)
    record_read(auditor, "auditor.statistics", request.query_string.decode()[:500])
    if request.args.get("format") == "csv":
        response = Response(as_csv(rows), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="statistics.csv"'
        return response
    return jsonify({"from": start.isoformat(), "to": end.isoformat(), "agencies": [r.as_dict() for r in rows]})
