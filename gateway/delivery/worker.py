"""A delivery worker: claim due routes, deliver through the recipient's adapter, record, repeat.

Run any number of them (``gateway worker``) on any number of hosts; they share nothing but the
database (and Redis for wake-ups when configured).  A worker that dies mid-delivery leaves a claim
whose lease expires; another worker delivers again, which the adapters make harmless.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from adapters import Adapter, Delivery, DeliveryResult, Deployment, get_adapter_class
from gateway.delivery.backoff import RetryPolicy
from gateway.delivery.breaker import CircuitBreakers
from gateway.delivery.gateway_side import GatewayCredentials
from gateway.delivery.queue import CHECKING, Claim, DeliveryQueue
from gateway.identity.access_tokens import TokenAuthority
from gateway.store.db import Database, DatabaseUnavailable
from gateway.store.tables import agencies, blobs, documents
from gateway.trust.pki import load_public_key

log = logging.getLogger("gateway.delivery")
DISABLED_WAIT = 300.0  # seconds between looks at a disabled recipient's routes


@dataclass(frozen=True)
class _Recipient:
    adapter: Adapter
    policy: RetryPolicy
    enabled: bool


class AdapterCache:
    """One adapter per recipient, rebuilt when the agency's registration changes.

    Routes not yet delivered go through the recipient's adapter as registered now: an operator who
    switches an agency to another adapter does so because the old way stopped working.
    """

    def __init__(self, db: Database, tokens: TokenAuthority, deployment: Deployment) -> None:
        self._db = db
        self._tokens = tokens
        self._deployment = deployment
        self._built: dict[str, tuple[str, _Recipient]] = {}

    def for_recipient(self, code: str) -> _Recipient:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(
                    agencies.c.adapter, agencies.c.adapter_settings, agencies.c.client_public_key, agencies.c.enabled
                ).where(agencies.c.code == code)
            ).one()
        fingerprint = json.dumps(
            [row.adapter, row.adapter_settings, row.client_public_key, bool(row.enabled)], sort_keys=True
        )
        cached = self._built.get(code)
        if cached is None or cached[0] != fingerprint:
            settings = dict(row.adapter_settings)
            # An agency reached through the national axis has no client key (it signs no receipts here).
            key = load_public_key(row.client_public_key) if row.client_public_key else None
            side = GatewayCredentials(self._tokens, key)
            adapter = get_adapter_class(row.adapter)(settings, side, self._deployment)
            cached = (fingerprint, _Recipient(adapter, RetryPolicy.from_settings(settings), bool(row.enabled)))
            self._built[code] = cached
        return cached[1]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        queue: DeliveryQueue,
        adapters: AdapterCache,
        *,
        breakers: CircuitBreakers | None = None,
        batch: int = 8,
        idle_seconds: float = 2.0,
        name: str | None = None,
        uniform: Callable[[float, float], float] | None = None,
    ) -> None:
        self._db = db
        self._queue = queue
        self._adapters = adapters
        self._breakers = breakers or CircuitBreakers()
        self._batch = batch
        self._idle = idle_seconds
        self.name = name or worker_name()
        self._uniform = uniform or random.uniform

    def run_once(self) -> int:
        """Claim one batch and work through it; returns how many routes were claimed."""
        claims = self._queue.claim(self.name, self._batch)
        for claim in claims:
            self._handle(claim)
        return len(claims)

    def run(self, stop: threading.Event, on_batch: Callable[[int], None] | None = None) -> None:
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except (DatabaseUnavailable, sa.exc.DBAPIError) as exc:  # wait; a claim left behind times out
                log.warning("delivery worker %s: database unavailable (%s)", self.name, type(exc).__name__)
                stop.wait(self._idle)
                continue
            if on_batch is not None:
                on_batch(claimed)
            if claimed == 0:
                self._queue.wakeup.wait(self._idle)

    def _handle(self, claim: Claim) -> None:
        try:
            recipient = self._adapters.for_recipient(claim.recipient)
        except Exception as exc:  # a registration the adapter cannot be built from must not kill the worker
            log.exception("cannot prepare the adapter for %s (route %s)", claim.recipient, claim.route_id)
            self._queue.postpone(
                claim, DISABLED_WAIT, f"the adapter for {claim.recipient} cannot be built: {type(exc).__name__}: {exc}"
            )
            return
        if not recipient.enabled and claim.state != CHECKING:
            self._queue.postpone(
                claim, DISABLED_WAIT, f"{claim.recipient} is disabled; delivery waits until it is enabled"
            )
            return
        if claim.state != CHECKING and claim.attempts > recipient.policy.max_attempts:
            # Every earlier attempt ended with its worker gone (a document that crashes workers, say).
            gave_up = DeliveryResult("permanent", "attempts never finished: their workers died or hung")
            self._queue.record(claim, gave_up, recipient.policy, 0)
            return
        wait = self._breakers.allows(claim.recipient)
        if wait is not None and claim.state != CHECKING:
            self._queue.postpone(claim, wait, f"circuit open for {claim.recipient}: recent attempts failed")
            return
        delivery = self._delivery(claim)
        try:
            if claim.state == CHECKING:
                result = recipient.adapter.check_receipt(delivery)
            else:
                result = recipient.adapter.deliver(delivery)
        except Exception as exc:  # an adapter bug must not kill the worker; the route is retried
            log.exception("adapter %s failed on route %s", claim.adapter, claim.route_id)
            result = DeliveryResult("retryable", f"adapter error: {type(exc).__name__}")
        if claim.state != CHECKING:
            if result.outcome == "retryable":
                self._breakers.failed(claim.recipient)
            else:
                self._breakers.succeeded(claim.recipient)
        delay = recipient.policy.delay(claim.attempts, self._uniform)
        state = self._queue.record(claim, result, recipient.policy, delay)
        log.info(
            "route %s to %s via %s: %s (%s)",
            claim.route_id,
            claim.recipient,
            claim.adapter,
            state or "claim lost",
            result.detail,
        )

    def _delivery(self, claim: Claim) -> Delivery:
        """What the adapter needs; a receipt check (every few seconds while awaited) skips the bytes."""
        checking = claim.state == CHECKING
        content = sa.literal(b"", sa.LargeBinary) if checking else blobs.c.content
        with self._db.read() as conn:
            doc = conn.execute(
                sa.select(documents, content.label("content"))
                .join(blobs, blobs.c.sha256 == documents.c.sha256)
                .where(documents.c.id == claim.document)
            ).one()
        metadata = {
            "document_id": doc.document_id,
            "kind": doc.kind,
            "sender": doc.sender,
            "sha256": doc.sha256,
            "received_at": doc.received_at.isoformat() if doc.received_at else None,
            "attempt": claim.attempts,
        }
        seal = b"" if checking else bytes(doc.seal)
        return Delivery(claim.document, claim.recipient, bytes(doc.content), seal, metadata, claim.reference)
