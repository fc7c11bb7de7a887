"""Documents and status messages other provinces and ministries send the city through the national axis.

One pass (:meth:`AxisReceiver.run_once`): ``getReceivedEdocList`` for each message type, then for
each axis docId not answered yet: ``getEdoc``, the normal submission path as the sending agency
(registered here as reached through the axis, with its certificates: the same signature, trust,
revocation, state-secret and routing checks, and the same audit entries as any submission), then
``updateStatus done`` — or ``fail`` with the refusal's code and reason.

Restarts repeat nothing and lose nothing: the decision is recorded under the axis's docId before
the axis is told, and a docId already decided is only answered again until the axis has it.  A
document accepted just before a crash (not yet recorded) comes back as the submission path's
duplicate, which is the same acceptance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gateway.audit.log import AuditEvent
from gateway.policy import Refusal
from gateway.routing.registry import AXIS_ADAPTER
from gateway.store.tables import vxp_received
from gateway.vxp.client import AxisClient, AxisRefused, AxisUnavailable, Received

log = logging.getLogger("gateway.vxp")

MESSAGE_TYPES = ("edoc", "status")


@dataclass
class Pass:
    accepted: int = 0
    refused: int = 0
    answered: int = 0
    problems: int = 0
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (axis docId, code, reason)


class AxisReceiver:
    def __init__(self, services: Any, client: AxisClient) -> None:
        self._svc = services
        self._client = client

    def run_once(self) -> Pass:
        """One look at the axis; an axis that is away is said and tried again next pass."""
        done = Pass()
        for kind in MESSAGE_TYPES:
            try:
                waiting = self._client.received(kind)
            except (AxisUnavailable, AxisRefused) as exc:
                log.warning("the axis's list of received %s cannot be had: %s", kind, exc)
                done.problems += 1
                continue
            for item in waiting:
                try:
                    self._take(item, done)
                except (AxisUnavailable, AxisRefused) as exc:
                    log.warning("axis document %s: %s; tried again next pass", item.doc_id, exc)
                    done.problems += 1
                except Exception:  # one entry's trouble never stops the others (review finding)
                    log.exception("axis document %s could not be taken; tried again next pass", item.doc_id)
                    done.problems += 1
        return done

    def _take(self, item: Received, done: Pass) -> None:
        svc = self._svc
        with svc.db.read() as conn:
            row = conn.execute(sa.select(vxp_received).where(vxp_received.c.doc_id == item.doc_id)).one_or_none()
        if row is None:
            data = self._client.document(item.doc_id)
            row = self._decide(item, data, done)
        # Listed again: the axis is still waiting for the answer, whether or not it was given before.
        status = "done" if row.outcome == "accepted" else "fail"
        description = "" if status == "done" else f"{row.code}: {row.reason}"
        self._client.update_status(item.doc_id, status, description)
        with svc.db.write() as conn:
            conn.execute(
                sa.update(vxp_received)
                .where(vxp_received.c.doc_id == item.doc_id)
                .values(answered_at=datetime.now(UTC))
            )
            svc.audit.append(
                conn,
                AuditEvent(
                    event="vxp.answered",
                    outcome="ok",
                    actor="vxp-receiver",
                    sender=item.sender[:35] or None,
                    document=row.gateway_id,
                    reason=f"axis document {item.doc_id}: updateStatus {status}",
                ),
            )
        done.answered += 1

    def _decide(self, item: Received, data: bytes, done: Pass) -> Any:
        """The submission path's verdict on the axis's document, recorded under its docId."""
        svc = self._svc
        values: dict[str, Any] = {
            "doc_id": item.doc_id,
            "sender": item.sender[:35],
            "message_type": item.message_type,
            "received_at": datetime.now(UTC),
        }
        try:
            sender = svc.agencies.agency(item.sender)
            if sender is None or sender.adapter != AXIS_ADAPTER or sender.client_public_key:
                # A city agency sends through the gateway, never through the axis: the axis (or whoever
                # is between it and us) cannot have documents taken in as one of them.
                raise Refusal(
                    "sender-not-via-axis",
                    f"{item.sender} is not registered here as an agency reached through the national axis",
                )
            submit = svc.submissions.submit_status if item.message_type == "status" else svc.submissions.submit_document
            accepted = submit(item.sender, data)
        except Refusal as refusal:  # audited by the submission path (document.refused / status.refused)
            values.update(outcome="refused", code=refusal.code, reason=refusal.reason[:2000])
            done.refused += 1
            done.refusals.append((item.doc_id, refusal.code, refusal.reason))
        else:
            values.update(outcome="accepted", gateway_id=accepted.id)
            done.accepted += 1
        with svc.db.write() as conn:
            conn.execute(sa.insert(vxp_received).values(**values))
            return conn.execute(sa.select(vxp_received).where(vxp_received.c.doc_id == item.doc_id)).one()
