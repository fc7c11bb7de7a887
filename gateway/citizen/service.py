"""Filing and following dossiers: what a citizen may do with a verified national-ID token."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.audit import AuditEvent, AuditLog
from gateway.audit.log import AppendedEntry
from gateway.citizen.catalog import Procedure
from gateway.citizen.dossier import LOCAL, Attachment, build_dossier
from gateway.citizen.ratings import Rating, parse_rating
from gateway.documents.edxml import STATUS_CODES
from gateway.documents.signing import sign_edxml
from gateway.identity.national_id import CitizenIdentity
from gateway.identity.state import RateLimiter
from gateway.json_input import Unreadable
from gateway.keys import GatewayKeys
from gateway.policy import RateLimited, Refusal
from gateway.routing.registry_cache import RegistryCache
from gateway.routing.submission import Accepted, SubmissionService
from gateway.store.db import Database
from gateway.store.helpers import as_utc
from gateway.store.tables import documents, dossier_ratings, dossiers, routes, statuses
from gateway.trust.pki import SigningKey
from gateway.working_days import add_working_days

MAX_FIELDS, MAX_FIELD_CHARS, MAX_ATTACHMENTS = 50, 2000, 10
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FILE_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]{1,200}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}")
# What an XML 1.0 document cannot carry (or what has no business in a form field): C0 controls but
# tab and line ends, DEL, lone surrogates (JSON's \ud800 escapes), and the non-characters U+FFFE/FFFF.
# ... and the bidirectional overrides, which make signed text read differently on screen than it is
# (U+202E turns "gcp.exe" into what looks like "exe.pcg"), and the line/paragraph separators.
_NOT_XML_TEXT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)


def _xml_text(text: str, what: str) -> str:
    """Text that will be signed into the dossier's XML; refused here rather than crashing the signer."""
    found = _NOT_XML_TEXT.search(text)
    if found is not None:
        raise Refusal(
            "dossier-invalid", f"{what} contains the character U+{ord(found.group()):04X}, which a document cannot hold"
        )
    return text


def citizen_actor(citizen: CitizenIdentity) -> str:
    return f"citizen:{citizen.personal_id_hash}"


class DossierService:
    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        agencies: RegistryCache,
        submissions: SubmissionService,
        keys: GatewayKeys,
        catalog: Mapping[str, Procedure],
        portal: str | None,
        max_bytes: int,
        limiter: RateLimiter,
        per_hour: int,
    ) -> None:
        self._db, self._audit, self._agencies, self._submissions = db, audit, agencies, submissions
        self._keys, self._catalog, self._portal, self._max_bytes = keys, catalog, portal, max_bytes
        self._limiter, self._per_hour = limiter, per_hour

    @property
    def catalog(self) -> Mapping[str, Procedure]:
        return self._catalog

    @contextmanager
    def _refusals_audited(
        self,
        citizen: CitizenIdentity,
        procedure: str | None,
        event: str = "dossier.refused",
        dossier: str | None = None,
    ) -> Iterator[None]:
        try:
            yield
        except Refusal as refusal:
            self._audit.refused(
                self._db,
                event,
                refusal,
                actor=citizen_actor(citizen),
                issuer=citizen.issuer,
                procedure=procedure,
                dossier=dossier,
            )
            raise

    def _within_hourly_limit(self, citizen: CitizenIdentity, what: str) -> None:
        """Each citizen's ``what`` (dossiers, ratings) per hour, counted in the shared limiter."""
        decision = self._limiter.hit(f"{what}:{citizen.personal_id_hash}", self._per_hour, 3600)
        if not decision.allowed:
            raise RateLimited(f"at most {self._per_hour} {what} an hour; try again later", decision.retry_after)

    def _portal_key(self) -> SigningKey:
        if self._keys.portal_key is None or not self._keys.portal_chain:
            raise Refusal(
                "dossiers-unavailable",
                "the citizen portal's signing key is missing (keys/portal-signing.key and .crt); "
                "`gateway keys init` makes development ones",
            )
        return self._keys.portal_key

    def submit(self, citizen: CitizenIdentity, request: Any) -> dict[str, Any]:
        code = request.get("procedure") if isinstance(request, dict) else None
        # Named in the refusal's audit entry only as far as a procedure code goes (text, 64 characters).
        with self._refusals_audited(citizen, code[:64] if isinstance(code, str) else None):
            expected = "send a JSON object with procedure, fields and attachments"
            if isinstance(request, Unreadable):
                raise Refusal("dossier-invalid", request.explained(expected))
            if not isinstance(request, dict):
                raise Refusal("dossier-invalid", expected)
            if self._portal is None:
                raise Refusal("dossiers-unavailable", "no citizen portal agency is configured (GATEWAY_PORTAL_AGENCY)")
            procedure = self._catalog.get(code) if isinstance(code, str) else None
            if procedure is None:
                raise Refusal("unknown-procedure", f"procedure {code!r} is not in the catalog; see GET /v1/procedures")
            if citizen.level < procedure.level:
                raise Refusal(
                    "level-insufficient",
                    f"procedure {procedure.code} needs an identity of level {procedure.level}; "
                    f"this login is level {citizen.level}: log in again with a level {procedure.level} account",
                )
            self._within_hourly_limit(citizen, "dossiers")
            fields = _fields(request.get("fields", {}), procedure)
            attachments = _attachments(request.get("attachments", []), self._max_bytes // 2)
            known = self._agencies.agencies([self._portal, *procedure.agencies])
            portal_name = known[self._portal].name if self._portal in known else self._portal
            agencies = [(a, known[a].name if a in known else a) for a in procedure.agencies]
            now = datetime.now(UTC)
            due = add_working_days(now.astimezone(LOCAL).date(), procedure.processing_days)
            dossier_id = str(uuid.uuid4())
            unsigned = build_dossier(
                portal=(self._portal, portal_name),
                agencies=agencies,
                procedure=procedure,
                citizen=citizen,
                fields=fields,
                attachments=attachments,
                number=dossier_id[:8].upper(),
                now=now,
                due=due,
            )
            signed = sign_edxml(unsigned, self._portal_key(), self._keys.portal_chain)

            def record(conn: Connection, accepted: Accepted) -> None:
                conn.execute(
                    sa.insert(dossiers).values(
                        id=dossier_id,
                        document=accepted.id,
                        citizen=citizen.personal_id_hash,
                        issuer=citizen.issuer,
                        level=citizen.level,
                        procedure=procedure.code,
                        created_at=accepted.received_at,
                        due_date=due.isoformat(),
                    )
                )
                self._audit.append(
                    conn,
                    AuditEvent(
                        event="dossier.submitted",
                        outcome="accepted",
                        actor=citizen_actor(citizen),
                        issuer=citizen.issuer,
                        procedure=procedure.code,
                        document=accepted.id,
                        document_id=accepted.document_id,
                        sender=self._portal,
                        sha256=accepted.sha256,
                    ),
                )

            accepted = self._submissions.submit_document(
                self._portal, signed, sequential=procedure.mode == "sequential", on_stored=record
            )
        return {
            "id": dossier_id,
            "procedure": procedure.code,
            "document": accepted.id,
            "document_id": accepted.document_id,
            "agencies": list(procedure.agencies),
            "mode": procedure.mode,
            "due_date": due.isoformat(),
            "audit_index": accepted.audit_index,
            "received_at": accepted.received_at.isoformat(),
        }

    def list(self, citizen: CitizenIdentity) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(dossiers)
                .where(dossiers.c.citizen == citizen.personal_id_hash)
                .order_by(dossiers.c.created_at)
            ).all()
            return [self._view(conn, row) for row in rows]

    def view(self, citizen: CitizenIdentity, dossier_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(dossiers).where(dossiers.c.id == dossier_id, dossiers.c.citizen == citizen.personal_id_hash)
            ).one_or_none()
            if row is None:
                raise Refusal("dossier-not-found", f"no dossier {dossier_id} belongs to this citizen")
            return self._view(conn, row)

    def rate(self, citizen: CitizenIdentity, dossier_id: str, body: Any) -> dict[str, Any]:
        """Once per finished dossier, by its citizen with a login of at least the level that filed it."""
        # Over the limit: a 429 with no audit entry, or the limit would not bound the log's growth.
        self._within_hourly_limit(citizen, "ratings")
        # Which dossier was aimed at, when the path names one (any other text is not recorded).
        named = dossier_id if _UUID.fullmatch(dossier_id) else None
        with self._refusals_audited(citizen, None, "dossier.rating-refused", dossier=named):
            if named is None:
                raise Refusal("dossier-not-found", "no such dossier belongs to this citizen")
            rating = parse_rating(body, _xml_text)
            try:
                entry = self._store_rating(citizen, dossier_id, rating)
            except IntegrityError:  # a concurrent rating of the same dossier committed first
                raise Refusal("rating-exists", "this dossier was already rated; a rating cannot be changed") from None
        return {"dossier": dossier_id, "score": rating.score, "comment": rating.comment, "audit_index": entry.index}

    def _store_rating(self, citizen: CitizenIdentity, dossier_id: str, rating: Rating) -> AppendedEntry:
        """Check and store in one transaction, the audit entry with the row; the primary key keeps it to one."""
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(dossiers).where(dossiers.c.id == dossier_id, dossiers.c.citizen == citizen.personal_id_hash)
            ).one_or_none()
            if row is None:
                raise Refusal("dossier-not-found", f"no dossier {dossier_id} belongs to this citizen")
            if citizen.level < row.level:
                raise Refusal(
                    "level-insufficient",
                    f"the dossier was filed with a level-{row.level} login; rate it with one of that level",
                )
            view = self._view(conn, row)
            if view["status"] != "done":
                raise Refusal("dossier-not-finished", "a dossier can be rated once every agency returned status 06")
            if view["rating"] is not None:
                raise Refusal("rating-exists", "this dossier was already rated; a rating cannot be changed")
            now = datetime.now(UTC)
            entry = self._audit.append(
                conn,
                AuditEvent(
                    event="dossier.rated",
                    outcome="ok",
                    actor=citizen_actor(citizen),
                    issuer=citizen.issuer,
                    procedure=row.procedure,
                    reason=f"dossier {row.id}",  # as before the dossier field, for readers of older entries
                    dossier=row.id,
                    rating=rating.score,
                    comment_hash=rating.comment_hash(self._keys.pepper),
                ),
                now=now,
            )
            conn.execute(
                sa.insert(dossier_ratings).values(
                    dossier=row.id,
                    score=rating.score,
                    comment=rating.comment,
                    rated_at=now,
                    audit_index=entry.index,
                )
            )
        return entry

    def _view(self, conn: Connection, row: Any) -> dict[str, Any]:
        procedure = self._catalog.get(row.procedure)
        doc = conn.execute(sa.select(documents).where(documents.c.id == row.document)).one()
        history = [
            {
                "agency": s.from_agency,
                "status_code": s.status_code,
                "meaning": STATUS_CODES.get(s.status_code, ""),
                "description": s.description,
                "timestamp": s.timestamp,
                "received_at": as_utc(s.received_at).isoformat(),
            }
            for s in conn.execute(
                sa.select(statuses).where(statuses.c.document == row.document).order_by(statuses.c.received_at)
            )
        ]
        routed = {
            r.recipient: r.state for r in conn.execute(sa.select(routes).where(routes.c.document == row.document))
        }
        rated = conn.execute(sa.select(dossier_ratings).where(dossier_ratings.c.dossier == row.id)).one_or_none()
        agencies = procedure.agencies if procedure else tuple(routed)
        done = {h["agency"] for h in history if h["status_code"] == "06"}
        today = datetime.now(UTC).astimezone(LOCAL).date().isoformat()
        return {
            "id": row.id,
            "procedure": row.procedure,
            "procedure_name": procedure.name if procedure else None,
            "document_id": doc.document_id,
            "submitted_at": as_utc(row.created_at).isoformat(),
            "due_date": row.due_date,
            "agencies": [
                {"agency": a, "state": "done" if a in done else ("received" if a in routed else "waiting")}
                for a in agencies
            ],
            "status": "done" if agencies and set(agencies) <= done else "processing",
            "overdue": today > row.due_date and not (agencies and set(agencies) <= done),
            "history": history,
            "rating": {"score": rated.score, "comment": rated.comment, "rated_at": as_utc(rated.rated_at).isoformat()}
            if rated is not None
            else None,
        }


def _fields(value: Any, procedure: Procedure) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_FIELDS:
        raise Refusal("dossier-invalid", f"fields must be an object of at most {MAX_FIELDS} text values")
    for name, text in value.items():
        if not _FIELD_NAME.fullmatch(str(name)) or not isinstance(text, str) or len(text) > MAX_FIELD_CHARS:
            raise Refusal(
                "dossier-invalid", f"field {str(name)[:64]!r} must be text of at most {MAX_FIELD_CHARS} characters"
            )
        _xml_text(text, f"field {name!r}")
    missing = [f for f in procedure.fields if not str(value.get(f, "")).strip()]
    if missing:
        raise Refusal("dossier-invalid", f"procedure {procedure.code} needs the field(s): {', '.join(missing)}")
    return dict(value)


def _attachments(value: Any, max_total: int) -> list[Attachment]:
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise Refusal("dossier-invalid", f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    out, total = [], 0
    for item in value:
        if not isinstance(item, dict):
            raise Refusal("dossier-invalid", "each attachment is an object with name, content_type, content (base64)")
        name, content_type = item.get("name", ""), item.get("content_type", "application/octet-stream")
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise Refusal("dossier-invalid", "attachment names are 1-200 characters without path separators")
        _xml_text(name, "an attachment name")
        if not isinstance(content_type, str) or not _MEDIA_TYPE.fullmatch(content_type):
            raise Refusal(
                "dossier-invalid", f"attachment {name!r}: content_type must be a media type like application/pdf"
            )
        try:
            content = base64.b64decode(str(item.get("content", "")), validate=True)
        except (binascii.Error, ValueError):
            raise Refusal("dossier-invalid", f"attachment {name!r} content is not base64") from None
        total += len(content)
        if total > max_total:
            raise Refusal("dossier-invalid", f"attachments exceed {max_total} bytes in total")
        out.append(Attachment(name, content_type, content))
    return out
