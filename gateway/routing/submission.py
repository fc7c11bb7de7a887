"""Accepting a signed edXML document or status message: every check, then one transaction.

The checks run in the order the exchange rules give (size, hardened parse, schema, caller is the
sender, signature, state secrets, routing permissions), each refusal audited with its reason in
its own transaction while nothing else is written.  An accepted document's bytes, its routes, its
seal and its audit entries commit together (DESIGN.md guarantee 1), so a 202 always means stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography import x509
from lxml import etree
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.audit import AuditEvent, AuditLog
from gateway.delivery.queue import DeliveryQueue
from gateway.documents import edxml, schema, xmlsafe
from gateway.documents.identifiers import parse_document_id
from gateway.documents.seal import SealFacts, build_seal
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignedContent,
    embedded_certificates,
    find_signature,
)
from gateway.keyring import KeyRing
from gateway.policy import Refusal
from gateway.routing.events import document_event
from gateway.routing.permissions import ROUTING_POLICY, RouteRequest
from gateway.routing.registry import AgencyRegistry
from gateway.routing.registry_cache import RegistryCache
from gateway.store.blob_io import store_blob
from gateway.store.db import Database, DatabaseUnavailable, is_lock_conflict
from gateway.store.helpers import as_utc, insert_ignoring_duplicates
from gateway.store.tables import documents, routes, statuses, trust_evidence
from gateway.trust.pki import cert_pem, fingerprint
from gateway.trust.timestamper import Timestamper


@dataclass
class _Claimed:
    """What an unverified submission says about itself, for its refusal's audit entry."""

    document_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    id: str
    kind: str
    document_id: str
    sha256: str
    audit_index: int
    received_at: datetime
    recipients: tuple[str, ...]
    duplicate: bool = False


StoredHook = Callable[[Connection, Accepted], None]
"""Runs inside the transaction that stores a document, so what it writes commits with it."""


@dataclass(frozen=True)
class _Checked:
    """What the checks established, taken only from the verified content."""

    kind: str
    caller: str
    data: bytes
    sha256: str
    signed: SignedContent
    document_id: str
    subject: str
    due_date: str | None
    recipients: tuple[str, ...]
    status: edxml.StatusHeader | None = None
    original: str | None = None  # gateway id of the document a status message is about
    sequential: bool = False  # route to the first recipient now, each next one after the previous sends 06
    on_stored: StoredHook | None = None


def store_status_evidence(conn: Connection, signed: SignedContent) -> str | None:
    """Keep the OCSP response or CRL the signer's status was decided on, once however many documents cite it."""
    status = signed.revocation.status if signed.revocation is not None else None
    if status is None:
        return None
    insert_ignoring_duplicates(
        conn,
        trust_evidence,
        {
            "sha256": status.evidence_sha256,
            "kind": status.source,
            "content": status.evidence,
            "created_at": datetime.now(UTC),
        },
    )
    return status.evidence_sha256


def chain_pem(signed: SignedContent) -> str:
    certificates = signed.chain.certificates if signed.chain is not None else (signed.signer,)
    return "".join(cert_pem(c) for c in certificates)


class SubmissionService:
    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        registry: AgencyRegistry,
        agencies: RegistryCache,
        ring: KeyRing,
        verifier: EnvelopedSignatureVerifier,
        limits: xmlsafe.XmlLimits,
        gateway_url: str,
        deliveries: DeliveryQueue,
        timestamper: Timestamper,
    ) -> None:
        self._db = db
        self._audit = audit
        self._registry = registry
        self._agencies = agencies
        self._ring = ring
        self._verifier = verifier
        self._limits = limits
        self._gateway_url = gateway_url
        self._deliveries = deliveries
        self._timestamper = timestamper

    # --- documents --------------------------------------------------------------------------

    def submit_document(
        self, caller: str, data: bytes, *, sequential: bool = False, on_stored: StoredHook | None = None
    ) -> Accepted:
        sha = hashlib.sha256(data).hexdigest()
        with self._refusals_audited("document.refused", caller, sha) as claimed:
            signed = self._parse_and_verify(caller, data, "document", claimed)
            header = edxml.read_document_header(signed.root)
            self._require_sender(caller, header.sender)
            parts = parse_document_id(header.document_id)
            if parts is None or parts.organ_id != caller:
                raise Refusal(
                    "document-id-invalid",
                    f"DocumentId {header.document_id!r} must read '{caller},yyyy/MM/dd,number/notation'",
                )
            if header.is_state_secret:
                raise Refusal(
                    "state-secret",
                    f"documents classified {header.security_classification} are state secrets and may not be "
                    "exchanged electronically (Law 29/2018/QH14, Decision 28/2018/QĐ-TTg)",
                )
            self._check_routes(caller, header.recipients)
            checked = _Checked(
                kind="document",
                caller=caller,
                data=data,
                sha256=sha,
                signed=signed.without_tree(),
                document_id=header.document_id,
                subject=header.subject,
                due_date=header.due_date,
                recipients=header.recipients,
                sequential=sequential,
                on_stored=on_stored,
            )
            del signed  # see SignedContent.without_tree
            return self._store(checked)

    # --- status messages --------------------------------------------------------------------

    def submit_status(self, caller: str, data: bytes) -> Accepted:
        sha = hashlib.sha256(data).hexdigest()
        with self._refusals_audited("status.refused", caller, sha) as claimed:
            signed = self._parse_and_verify(caller, data, "status", claimed)
            status = edxml.read_status_header(signed.root)
            self._require_sender(caller, status.sender)
            with self._db.read() as conn:
                original = conn.execute(
                    sa.select(documents.c.id, documents.c.sender).where(
                        documents.c.kind == "document",
                        documents.c.sender == status.response_for_organ,
                        documents.c.document_id == status.response_for_document_id,
                    )
                ).one_or_none()
                if original is None:
                    raise Refusal(
                        "original-not-found",
                        f"no document {status.response_for_document_id!r} from {status.response_for_organ} "
                        "passed through this gateway",
                    )
                recipients = tuple(
                    r.recipient
                    for r in conn.execute(sa.select(routes.c.recipient).where(routes.c.document == original.id))
                )
            if status.status_code == "13":  # recall: the sender tells every recipient
                if caller != original.sender:
                    raise Refusal("not-permitted", "only the original sender may request a recall (status 13)")
                targets = recipients
            else:
                if caller not in recipients:
                    raise Refusal("not-permitted", f"{caller} is not a recipient of that document")
                targets = (original.sender,)
            self._check_routes(caller, targets, permission=False)
            checked = _Checked(
                kind="status",
                caller=caller,
                data=data,
                sha256=sha,
                signed=signed.without_tree(),
                document_id=sha,
                subject=f"{status.status_code} {edxml.STATUS_CODES[status.status_code]}: "
                f"{status.response_for_document_id}"[:500],
                due_date=None,
                recipients=targets,
                status=status,
                original=original.id,
            )
            del signed  # see SignedContent.without_tree
            return self._store(checked)

    # --- shared steps -----------------------------------------------------------------------

    def _parse_and_verify(self, caller: str, data: bytes, kind: schema.Kind, claimed: _Claimed) -> SignedContent:
        root = xmlsafe.parse(data, self._limits)
        claimed.document_id = edxml.claimed_document_id(root) or None
        if root.tag != edxml.q("edXML"):
            raise Refusal(
                "schema-invalid",
                f"the root element is {etree.QName(root).localname!r}, not edXML:edXML: send the edXML "
                "document itself (a gateway seal or another file was sent)",
            )
        if find_signature(root) is None:
            raise Refusal(
                "signature-missing",
                "the document is not signed: sign it first, e.g. "
                "`gateway sign FILE --key signing.key --cert signing.crt`",
            )
        schema.validate(root, kind)
        self._require_sender(caller, edxml.claimed_sender(root))
        certificates: Sequence[x509.Certificate] = self._agencies.signing_certificates(caller)
        try:
            return self._verifier.verify(data, root, certificates)
        except Refusal as refusal:
            if refusal.code == "certificate-not-registered":
                self._explain_unusable_certificate(caller, root)
            raise

    def _explain_unusable_certificate(self, caller: str, root: etree._Element) -> None:
        """A signer registered once but expired or removed since deserves to be told so, not "unknown"."""
        signature = find_signature(root)
        embedded = embedded_certificates(signature) if signature is not None else []
        if not embedded:
            return
        with self._db.read() as conn:
            row = self._registry.certificate_record(conn, caller, fingerprint(embedded[0]))
        if row is None:  # issue 11 newcomer: say whose certificate it is and what to do
            subject = embedded[0].subject.rfc4514_string()[:120]
            raise Refusal(
                "certificate-not-registered",
                f"the document is signed with the certificate of {subject!r} (sha256 {fingerprint(embedded[0])}), "
                f"which is not registered to {caller}: sign it with {caller}'s own signing key and certificate, "
                f"or have the operator register this one (`gateway agency cert add {caller} --cert CERT.pem`)",
            )
        now = datetime.now(UTC)
        if row.removed_at is not None:
            raise Refusal(
                "certificate-not-registered",
                f"the signing certificate was removed from {caller} at {as_utc(row.removed_at):%Y-%m-%d %H:%M} UTC; "
                "sign with a current one (`gateway agency cert list`)",
            )
        if not as_utc(row.not_before) <= now < as_utc(row.not_after):
            raise Refusal(
                "certificate-expired",
                f"the signing certificate is valid from {as_utc(row.not_before):%Y-%m-%d} to "
                f"{as_utc(row.not_after):%Y-%m-%d}; sign with a current one",
            )

    @staticmethod
    def _require_sender(caller: str, sender: str) -> None:
        if sender != caller:
            raise Refusal("sender-mismatch", f"From/OrganId is {sender!r} but the caller is {caller!r}")

    def _check_routes(self, caller: str, recipients: Sequence[str], *, permission: bool = True) -> None:
        known = self._agencies.agencies([caller, *recipients])
        sender = known[caller]  # the caller authenticated as this agency
        if not permission:  # answering a document needs no permission beyond having received it
            sender = replace(sender, may_send_to=("*",))
        ROUTING_POLICY.verify(RouteRequest(sender, recipients, known))

    def _store(self, checked: _Checked) -> Accepted:
        for attempt in (1, 2, 3):
            try:
                stored, pushes = self._db.write_grouped(lambda conn: self._store_in(conn, checked))
                if not stored.duplicate:
                    self._timestamper.note_pending(stored.received_at)
                if pushes:  # committed: wake a delivery worker; pull-only routes need nobody
                    self._deliveries.wakeup.notify()
                return stored
            except IntegrityError:
                # A concurrent identical submission won the unique constraint; the retry sees its row.
                if attempt == 3:
                    raise
            except DBAPIError as exc:
                # PostgreSQL broke a lock cycle with another transaction by failing this one: nothing of it
                # was stored, so it is run again (the others went through); still failing, "retry later".
                if not is_lock_conflict(exc):
                    raise
                if attempt == 3:
                    raise DatabaseUnavailable(f"lock conflicts persisted: {exc.orig}") from exc
        raise AssertionError("unreachable")

    def _store_in(self, conn: Connection, c: _Checked) -> tuple[Accepted, int]:
        """Store the checked submission; also returns how many push routes it queued."""
        existing = conn.execute(
            sa.select(documents).where(
                documents.c.sender == c.caller, documents.c.kind == c.kind, documents.c.document_id == c.document_id
            )
        ).one_or_none()
        if existing is not None:
            if existing.sha256 != c.sha256:
                raise Refusal(
                    "duplicate-document-id",
                    f"DocumentId {c.document_id!r} was already accepted as {existing.id} with different content",
                )
            self._audit.append(conn, self._event(c, "document.resubmitted", existing.id))
            recipients = tuple(
                r.recipient for r in conn.execute(sa.select(routes.c.recipient).where(routes.c.document == existing.id))
            )
            duplicate = Accepted(
                existing.id,
                c.kind,
                c.document_id,
                c.sha256,
                int(existing.audit_index),
                as_utc(existing.received_at),
                recipients,
                duplicate=True,
            )
            return duplicate, 0
        self._timestamper.refuse_if_overdue()  # accepting what cannot be timestamped would be unprovable
        doc_uuid = str(uuid.uuid4())
        pushes = 0
        route_now = c.recipients[:1] if c.sequential else c.recipients
        store_blob(conn, c.sha256, c.data)
        evidence = store_status_evidence(conn, c.signed)
        flag = c.signed.revocation.flag if c.signed.revocation else None
        entries = self._audit.append_many(
            conn,
            [
                self._event(c, f"{c.kind}.accepted", doc_uuid),
                *(self._event(c, f"{c.kind}.routed", doc_uuid, recipient=r) for r in route_now),
            ],
        )
        accepted = entries[0]
        seal = build_seal(
            SealFacts(
                gateway=self._gateway_url,
                document_uuid=doc_uuid,
                kind=c.kind,
                document_id=c.document_id,
                sha256=c.sha256,
                size=len(c.data),
                sender=c.caller,
                recipients=c.recipients,
                signer_certificate_sha256=c.signed.signer_fingerprint,
                received_at=accepted.time,
                audit_index=accepted.index,
                signer_status_sha256=evidence,
                signer_status_flag=flag,
            ),
            self._ring.keys.seal_key,
            self._ring.keys.seal_chain,
        )
        conn.execute(
            sa.insert(documents).values(
                id=doc_uuid,
                kind=c.kind,
                sender=c.caller,
                document_id=c.document_id,
                sha256=c.sha256,
                subject=c.subject,
                due_date=c.due_date,
                signature_algorithm=c.signed.signature_method,
                signer_fingerprint=c.signed.signer_fingerprint,
                received_at=accepted.time,
                audit_index=accepted.index,
                seal=seal,
                pending_recipients=list(c.recipients[len(route_now) :]) or None,
                signature_value=c.signed.signature_value,
                signer_chain=chain_pem(c.signed),
                signer_status=evidence,
                status_flag=flag,
            )
        )
        if c.status is not None and c.original is not None:
            conn.execute(
                sa.insert(statuses).values(
                    message=doc_uuid,
                    document=c.original,
                    from_agency=c.caller,
                    status_code=c.status.status_code,
                    description=c.status.description,
                    timestamp=c.status.timestamp,
                    received_at=accepted.time,
                )
            )
            if c.status.status_code == "06":
                pushes += self._route_next_in_sequence(conn, c.original, c.caller)
        adapters = {code: agency.adapter for code, agency in self._agencies.agencies(route_now).items()}
        pushes += DeliveryQueue.add_routes(conn, doc_uuid, route_now, accepted.time, adapters)
        stored = Accepted(doc_uuid, c.kind, c.document_id, c.sha256, accepted.index, accepted.time, c.recipients)
        if c.on_stored is not None:
            c.on_stored(conn, stored)
        return stored, pushes

    def _route_next_in_sequence(self, conn: Connection, original: str, finished_by: str) -> int:
        """A recipient finished (status 06): the next agency of a sequential procedure receives the document.

        Returns how many push routes that queued (0 or 1)."""
        doc = conn.execute(sa.select(documents).where(documents.c.id == original)).one()
        pending = list(doc.pending_recipients or [])
        if not pending:
            return 0
        # Only the agency whose turn it is (the one routed last) moves the procedure on, once: an 06 from an
        # earlier agency, or a second 06 from the same one, must not skip the next agency.
        current = conn.execute(
            sa.select(routes.c.recipient).where(routes.c.document == original).order_by(routes.c.id.desc()).limit(1)
        ).scalar_one_or_none()
        if finished_by != current:
            return 0
        following, rest = pending[0], pending[1:]
        now = datetime.now(UTC)
        conn.execute(sa.update(documents).where(documents.c.id == original).values(pending_recipients=rest or None))
        pushes = DeliveryQueue.add_routes(conn, original, [following], now)
        self._audit.append(
            conn,
            document_event(
                doc,
                "document.routed",
                actor=finished_by,
                recipient=following,
                outcome="accepted",
                reason=f"sequential procedure: {finished_by} finished (06)",
            ),
        )
        return pushes

    def _event(self, c: _Checked, event: str, doc_uuid: str, recipient: str | None = None) -> AuditEvent:
        if c.status is not None:
            return AuditEvent(
                event=event,
                outcome="accepted",
                actor=c.caller,
                document=c.original,
                message=doc_uuid,
                document_id=c.status.response_for_document_id,
                sender=c.caller,
                recipient=recipient,
                sha256=c.sha256,
                signature=c.signed.summary,
                status_code=c.status.status_code,
            )
        return AuditEvent(
            event=event,
            outcome="accepted",
            actor=c.caller,
            document=doc_uuid,
            document_id=c.document_id,
            sender=c.caller,
            recipient=recipient,
            sha256=c.sha256,
            signature=c.signed.summary,
        )

    # --- refusals ---------------------------------------------------------------------------

    @contextmanager
    def _refusals_audited(self, event: str, caller: str, sha: str) -> Iterator[_Claimed]:
        """A :class:`Refusal` escaping the block is audited in its own transaction, then re-raised,
        with the DocumentId the submission claimed when it could be read."""
        claimed = _Claimed()
        try:
            yield claimed
        except Refusal as refusal:
            self._audit.refused(
                self._db,
                event,
                refusal,
                actor=caller,
                sender=caller,
                sha256=sha,
                claimed_document_id=claimed.document_id[:255] if claimed.document_id else None,
            )
            raise
