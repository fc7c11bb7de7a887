"""The delivery queue is the routes table: rows that workers claim under a lease and record.

Claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`` on PostgreSQL,
so any number of workers on any number of hosts take disjoint rows with no coordinator; on SQLite
the same statement runs under the database's single writer lock.  A claim whose worker died is
due again once its lease has passed.  Every result is recorded only if the worker still holds the
claim (same worker, same state), with its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters import DeliveryResult, get_adapter_class
from gateway.audit import AuditLog
from gateway.delivery.backoff import RetryPolicy
from gateway.delivery.wakeup import Wakeup
from gateway.routing.events import document_event
from gateway.store.db import Database
from gateway.store.helpers import as_utc
from gateway.store.tables import agencies, documents, routes

PULL_WAITING = "pending"
QUEUED, DELIVERING, AWAITING_RECEIPT, CHECKING, DELIVERED, DEAD = (
    "queued",
    "delivering",
    "awaiting-receipt",
    "checking",
    "delivered",
    "dead",
)
PUSH_STATES = (QUEUED, DELIVERING, AWAITING_RECEIPT, CHECKING, DELIVERED, DEAD)
ACTOR = "gateway"


@dataclass(frozen=True)
class Claim:
    route_id: int
    document: str
    recipient: str
    adapter: str
    state: str  # DELIVERING: deliver now; CHECKING: look for the receipt of an earlier delivery
    attempts: int  # including this one, when delivering
    reference: str | None
    worker: str


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveryQueue:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        wakeup: Wakeup,
        *,
        lease_seconds: float = 60,
        receipt_poll_seconds: float = 15,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._db = db
        self._audit = audit
        self.wakeup = wakeup
        self.lease = timedelta(seconds=lease_seconds)
        self.receipt_poll = timedelta(seconds=receipt_poll_seconds)
        self.clock = clock

    # --- routes come in -------------------------------------------------------------------

    @staticmethod
    def add_routes(
        conn: Connection,
        document: str,
        recipients: Sequence[str],
        now: datetime,
        adapters: Mapping[str, str] | None = None,
    ) -> int:
        """New routes: in the inbox for pull recipients, queued for a worker for everyone else.

        ``adapters`` (recipient → adapter name) comes from the registry cache on the submission path,
        which keeps a SELECT out of the one write section; without it they are read here.
        Returns how many were queued, so the caller wakes a worker (after commit) only when needed.
        """
        adapter_of = (
            dict(adapters)
            if adapters is not None
            else {
                r.code: r.adapter
                for r in conn.execute(
                    sa.select(agencies.c.code, agencies.c.adapter).where(agencies.c.code.in_(list(recipients)))
                )
            }
        )
        rows = []
        for recipient in recipients:
            adapter = adapter_of.get(recipient, "inbox")
            pull = get_adapter_class(adapter).pull
            rows.append(
                {
                    "document": document,
                    "recipient": recipient,
                    "adapter": adapter,
                    "state": PULL_WAITING if pull else QUEUED,
                    "created_at": now,
                    "next_attempt_at": None if pull else now,
                }
            )
        if rows:
            conn.execute(sa.insert(routes), rows)
        return sum(1 for row in rows if row["state"] == QUEUED)

    # --- workers take and record ------------------------------------------------------------

    def claim(self, worker: str, limit: int) -> list[Claim]:
        now = self.clock()
        due = sa.or_(
            sa.and_(routes.c.state.in_((QUEUED, AWAITING_RECEIPT)), routes.c.next_attempt_at <= now),
            sa.and_(routes.c.state.in_((DELIVERING, CHECKING)), routes.c.lease_until < now),
        )
        with self._db.write() as conn:
            candidates = sa.select(routes.c.id).where(due).order_by(routes.c.next_attempt_at).limit(limit)
            if not self._db.is_sqlite:
                candidates = candidates.with_for_update(skip_locked=True)
            checking = routes.c.state.in_((AWAITING_RECEIPT, CHECKING))
            rows = conn.execute(
                sa.update(routes)
                .where(routes.c.id.in_(candidates.scalar_subquery()))
                .values(
                    state=sa.case((checking, CHECKING), else_=DELIVERING),
                    attempts=sa.case((checking, routes.c.attempts), else_=routes.c.attempts + 1),
                    claimed_by=worker,
                    lease_until=now + self.lease,
                )
                .returning(
                    routes.c.id,
                    routes.c.document,
                    routes.c.recipient,
                    routes.c.adapter,
                    routes.c.state,
                    routes.c.attempts,
                    routes.c.reference,
                )
            ).all()
        return [
            Claim(int(r.id), r.document, r.recipient, r.adapter, r.state, int(r.attempts), r.reference, worker)
            for r in rows
        ]

    def _still_ours(self, claim: Claim) -> sa.ColumnElement[bool]:
        return sa.and_(
            routes.c.id == claim.route_id, routes.c.claimed_by == claim.worker, routes.c.state == claim.state
        )

    def record(self, claim: Claim, result: DeliveryResult, policy: RetryPolicy, delay: float) -> str | None:
        """Store what happened; returns the route's new state, or ``None`` when another worker has the claim."""
        now = self.clock()
        values: dict[str, Any] = {"claimed_by": None, "lease_until": None}
        event: tuple[str, str] | None = None  # (audit event, outcome)
        if result.outcome == "delivered":
            values.update(
                state=DELIVERED, delivered_at=now, receipt=result.receipt, last_error=None, next_attempt_at=None
            )
            event = ("delivery.delivered", "ok")
        elif result.outcome == "awaiting-pull":  # the agency was switched to a pull adapter: into its inbox
            values.update(state=PULL_WAITING, adapter="inbox", next_attempt_at=None, last_error=None)
            event = ("delivery.handed-over", "ok")
        elif result.outcome == "awaiting-receipt":
            values.update(state=AWAITING_RECEIPT, next_attempt_at=now + self.receipt_poll, last_error=None)
            if claim.state == DELIVERING:
                event = ("delivery.handed-over", "ok")
        elif result.outcome == "permanent" or (claim.state == DELIVERING and policy.exhausted(claim.attempts)):
            values.update(state=DEAD, last_error=result.detail[:500], next_attempt_at=None)
            event = ("delivery.dead-lettered", "refused")
        elif claim.state == CHECKING:  # the delivery vanished before its receipt: deliver again now
            values.update(state=QUEUED, next_attempt_at=now, last_error=result.detail[:500])
            event = ("delivery.redelivering", "retry")
        else:
            values.update(state=QUEUED, next_attempt_at=now + timedelta(seconds=delay), last_error=result.detail[:500])
            event = ("delivery.attempt-failed", "retry")
        if result.reference is not None:
            values["reference"] = result.reference
        with self._db.write() as conn:
            if conn.execute(sa.update(routes).where(self._still_ours(claim)).values(**values)).rowcount != 1:
                return None
            if event is not None:
                doc = conn.execute(sa.select(documents).where(documents.c.id == claim.document)).one()
                reason = f"attempt {claim.attempts} via {claim.adapter}: {result.detail}"[:500]
                self._audit.append(
                    conn,
                    document_event(
                        doc, event[0], actor=ACTOR, recipient=claim.recipient, outcome=event[1], reason=reason
                    ),
                )
        return str(values["state"])

    def postpone(self, claim: Claim, seconds: float, why: str) -> None:
        """Give a claim back without spending an attempt (an open circuit breaker)."""
        now = self.clock()
        with self._db.write() as conn:
            conn.execute(
                sa.update(routes)
                .where(self._still_ours(claim))
                .values(
                    state=QUEUED if claim.state == DELIVERING else AWAITING_RECEIPT,
                    attempts=claim.attempts - 1 if claim.state == DELIVERING else claim.attempts,
                    next_attempt_at=now + timedelta(seconds=seconds),
                    claimed_by=None,
                    lease_until=None,
                    last_error=why[:500],
                )
            )

    # --- operators ---------------------------------------------------------------------------

    def retry(self, route_ids: Sequence[int], actor: str) -> list[int]:
        """Queue dead-lettered routes again with a fresh attempt budget; returns the ids requeued."""
        now = self.clock()
        with self._db.write() as conn:
            requeued = [
                int(r.id)
                for r in conn.execute(
                    sa.update(routes)
                    .where(routes.c.id.in_(list(route_ids)), routes.c.state == DEAD)
                    .values(state=QUEUED, attempts=0, next_attempt_at=now, last_error=None)
                    .returning(routes.c.id, routes.c.document, routes.c.recipient)
                ).all()
            ]
            for route in conn.execute(
                sa.select(routes.c.recipient, documents)
                .join(documents, documents.c.id == routes.c.document)
                .where(routes.c.id.in_(requeued))
            ).all():
                self._audit.append(
                    conn, document_event(route, "delivery.retry-requested", actor=actor, recipient=route.recipient)
                )
        if requeued:
            self.wakeup.notify()
        return requeued

    def listing(
        self, *, states: Sequence[str] = PUSH_STATES, agency: str | None = None, limit: int = 100, after: int = 0
    ) -> list[dict[str, Any]]:
        query = (
            sa.select(
                routes.c.id,
                routes.c.document,
                documents.c.document_id,
                documents.c.sender,
                routes.c.recipient,
                routes.c.adapter,
                routes.c.state,
                routes.c.attempts,
                routes.c.next_attempt_at,
                routes.c.last_error,
                routes.c.created_at,
                routes.c.delivered_at,
            )
            .join(documents, documents.c.id == routes.c.document)
            .where(routes.c.state.in_(list(states)), routes.c.id > after)
            .order_by(routes.c.id)
            .limit(limit)
        )
        if agency:
            query = query.where(sa.or_(routes.c.recipient == agency, documents.c.sender == agency))
        with self._db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def oldest_due_seconds(self) -> float:
        """How long the longest-waiting due push route has been due: the backlog an operator watches."""
        now = self.clock()
        with self._db.read() as conn:
            oldest = conn.execute(
                sa.select(sa.func.min(routes.c.next_attempt_at)).where(
                    routes.c.state == QUEUED, routes.c.next_attempt_at <= now
                )
            ).scalar_one_or_none()
        if oldest is None:
            return 0.0
        return max(0.0, (now - as_utc(oldest)).total_seconds())

    def counts(self) -> dict[str, int]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(routes.c.state, sa.func.count().label("n")).group_by(routes.c.state)).all()
        return {r.state: int(r.n) for r in rows}
