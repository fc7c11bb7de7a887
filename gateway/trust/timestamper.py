"""Obtaining RFC 3161 timestamps for accepted documents, in batches, off the request path.

Why batches: one TSA round trip per document would put the TSA's latency and signing cost on every
submission.  Instead each pass takes the documents not yet timestamped, builds the RFC 9162 Merkle
tree of their signature values (the same hashing as the audit log), and asks the TSA for one token
whose message imprint is the tree's root.  A document's proof of time is then the token plus its
inclusion path — what X-Road does with its batched hash chains.  Passes run about once a second in
every server process (the gunicorn worker thread), so the time a token attests is within a second or
two of acceptance.

While the TSA is unreachable the gateway keeps accepting for ``failure_seconds`` (X-Road's default
grace is 14 400 s) and timestamps the backlog when it returns; past the period submissions are
refused with 503 ``timestamp-unavailable`` rather than accepted unprovable.

The audit log's checkpoints are timestamped the same way, at least once a minute while it grows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography import x509

from gateway.audit import AuditEvent, AuditLog
from gateway.audit.merkle import LeafHashes, hash_leaf, inclusion_path, root_hash
from gateway.fetch import Bounds
from gateway.policy import Refusal
from gateway.store.db import Database
from gateway.store.helpers import as_utc, insert_ignoring_duplicates
from gateway.store.tables import audit_checkpoints, checkpoint_timestamps, documents, timestamp_batches, trust_evidence
from gateway.trust.timestamps import Timestamp, request_timestamp

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 60
MAX_TSA_SKEW_SECONDS = 300


def now_utc() -> datetime:
    return datetime.now(UTC)


def signature_leaf(signature_value: bytes) -> bytes:
    """The leaf a document contributes to its batch: RFC 9162 leaf hash of its decoded SignatureValue."""
    return hash_leaf(signature_value)


def leaf_index(leaves: bytes, signature_value: bytes) -> int:
    """Where a document's leaf sits in its batch (leaves: 32-byte hashes concatenated)."""
    wanted = signature_leaf(signature_value)
    for index in range(0, len(leaves) // 32):
        if leaves[index * 32 : index * 32 + 32] == wanted:
            return index
    raise LookupError("the document's signature value is not in its timestamp batch")


def batch_inclusion(leaves: bytes, index: int) -> tuple[bytes, list[bytes]]:
    """The batch root and the inclusion path of leaf ``index`` (leaves: 32-byte hashes concatenated)."""
    hashes = [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
    tree = LeafHashes(hashes)
    return root_hash(tree, len(hashes)), inclusion_path(tree, index, len(hashes))


@dataclass(frozen=True)
class TimestampHealth:
    enabled: bool
    pending: int
    failing_since: datetime | None
    last_error: str | None


class Timestamper:
    def __init__(
        self,
        db: Database,
        *,
        audit: AuditLog | None = None,
        url: str | None,
        anchors: Sequence[x509.Certificate],
        failure_seconds: int,
        check_tsa: Callable[[Timestamp], None] | None = None,
        clock: Callable[[], datetime] = now_utc,
        batch_limit: int = 4096,
        bounds: Bounds = Bounds(timeout=5.0, max_bytes=256 * 1024),  # noqa: B008 - frozen
    ) -> None:
        self._db = db
        self._audit = audit
        self.url = url
        self._anchors = tuple(anchors)
        self._failure_seconds = failure_seconds
        self._check_tsa = check_tsa
        self.clock = clock  # public so that tests and drills can move time
        self._batch_limit = batch_limit
        self._bounds = bounds
        self._failing_since: datetime | None = None
        self._oldest: datetime | None = None
        self._oldest_read_at: float | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()  # one pass at a time per process
        self.requests = 0  # TSA calls made, for /metrics and the benchmark

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def refuse_if_overdue(self) -> None:
        """Refuse new submissions once an accepted document has waited longer than the failure period.

        Read from the database (the oldest document still without a timestamp), not from this
        process's memory: a restarted or added worker must not grant itself a fresh period."""
        if not self.enabled:
            return
        oldest = self._oldest_pending()
        if oldest is None:
            return
        waited = (self.clock() - oldest).total_seconds()
        if waited <= self._failure_seconds:
            return
        raise Refusal(
            "timestamp-unavailable",
            f"accepted documents have waited {waited:.0f} s for a trusted timestamp, longer than the "
            f"{self._failure_seconds} s allowed ({self._last_error or 'the timestamp authority is not answering'}); "
            "nothing was stored, retry later",
        )

    def note_pending(self, received_at: datetime) -> None:
        """A document this process just accepted waits for a timestamp too (other processes' within a second)."""
        if self._oldest is None or received_at < self._oldest:
            self._oldest = received_at

    def _oldest_pending(self) -> datetime | None:
        """The oldest untimestamped document's receipt time, read at most once a second per process."""
        now = time.monotonic()
        if self._oldest_read_at is not None and now - self._oldest_read_at < 1.0:
            return self._oldest
        with self._db.read() as conn:
            found = conn.execute(
                sa.select(sa.func.min(documents.c.received_at)).where(
                    documents.c.timestamp_batch.is_(None), documents.c.signature_value.is_not(None)
                )
            ).scalar_one_or_none()
        self._oldest = as_utc(found) if found is not None else None
        self._oldest_read_at = now
        return self._oldest

    def health(self) -> TimestampHealth:
        pending = 0
        if self.enabled:
            with self._db.read() as conn:
                pending = int(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(documents)
                        .where(documents.c.timestamp_batch.is_(None), documents.c.signature_value.is_not(None))
                    ).scalar_one()
                )
        return TimestampHealth(self.enabled, pending, self._failing_since, self._last_error)

    def run_once(self) -> int:
        """One pass: timestamp the waiting documents (one token) and, when due, the latest checkpoint."""
        if not self.enabled:
            return 0
        with self._lock:
            done = self._documents()
            if done:
                self._oldest_read_at = None  # the backlog shrank: look again before refusing anyone
            self._checkpoint()
            return done

    def run_quietly(self) -> None:
        try:
            self.run_once()
        except Exception:
            log.exception("timestamping pass failed")

    # --- passes -------------------------------------------------------------------------------

    def _request(self, digest: bytes) -> Timestamp | None:
        assert self.url is not None
        self.requests += 1
        try:
            stamp = request_timestamp(self.url, digest, self._anchors, bounds=self._bounds)
            skew = abs((stamp.gen_time - self.clock()).total_seconds())
            if skew > MAX_TSA_SKEW_SECONDS:  # a token whose time is wrong would make its evidence unverifiable
                raise Refusal("timestamp-untrusted", f"the TSA's genTime is {skew:.0f} s away from this server's clock")
            if self._check_tsa is not None:
                self._check_tsa(stamp)
        except Refusal as refusal:
            self._last_error = f"{refusal.code}: {refusal.reason}"[:300]
            log.warning("timestamp authority failed: %s", self._last_error)
            if self._failing_since is None:  # audited when it starts failing and when it recovers, not every pass
                self._failing_since = self.clock()
                self._record("timestamp.failing", "refused", refusal.code, self._last_error)
            return None
        if self._failing_since is not None:
            self._record("timestamp.recovered", "ok", None, f"failing since {self._failing_since.isoformat()}")
        self._failing_since = None
        self._last_error = None
        return stamp

    def _record(self, event: str, outcome: str, code: str | None, reason: str) -> None:
        if self._audit is None:
            return
        try:
            with self._db.write() as conn:
                self._audit.append(
                    conn, AuditEvent(event=event, outcome=outcome, actor="gateway", code=code, reason=reason)
                )
        except Exception:
            log.exception("could not audit %s", event)

    def _documents(self) -> int:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(documents.c.id, documents.c.signature_value)
                .where(documents.c.timestamp_batch.is_(None), documents.c.signature_value.is_not(None))
                .order_by(documents.c.received_at, documents.c.id)
                .limit(self._batch_limit)
            ).all()
        if not rows:
            return 0
        leaves = [signature_leaf(bytes(r.signature_value)) for r in rows]
        root = root_hash(LeafHashes(leaves), len(leaves))
        stamp = self._request(root)
        if stamp is None:
            return 0
        with self._db.write() as conn:
            token = self._store_token(conn, stamp)
            batch = conn.execute(
                sa.insert(timestamp_batches)
                .values(
                    root=root.hex(), size=len(leaves), leaves=b"".join(leaves), token=token, gen_time=stamp.gen_time
                )
                .returning(timestamp_batches.c.id)
            ).scalar_one()
            # One statement for the whole batch: a document's place in it is found again from its own
            # signature value (see leaf_index), so nothing per document needs writing.
            conn.execute(
                sa.update(documents)
                .where(documents.c.id.in_([r.id for r in rows]), documents.c.timestamp_batch.is_(None))
                .values(timestamp_batch=batch)
            )
        return len(rows)

    def _checkpoint(self) -> None:
        with self._db.read() as conn:
            latest = conn.execute(
                sa.select(audit_checkpoints.c.size, audit_checkpoints.c.note)
                .order_by(audit_checkpoints.c.size.desc())
                .limit(1)
            ).one_or_none()
            last = conn.execute(
                sa.select(checkpoint_timestamps.c.size, checkpoint_timestamps.c.gen_time)
                .order_by(checkpoint_timestamps.c.size.desc())
                .limit(1)
            ).one_or_none()
        if latest is None or (last is not None and last.size >= latest.size):
            return
        if last is not None and (self.clock() - _aware(last.gen_time)).total_seconds() < CHECKPOINT_INTERVAL_SECONDS:
            return
        stamp = self._request(hashlib.sha256(latest.note.encode()).digest())
        if stamp is None:
            return
        with self._db.write() as conn:
            token = self._store_token(conn, stamp)
            insert_ignoring_duplicates(
                conn, checkpoint_timestamps, {"size": latest.size, "token": token, "gen_time": stamp.gen_time}
            )

    def _store_token(self, conn: sa.Connection, stamp: Timestamp) -> str:
        sha = hashlib.sha256(stamp.token).hexdigest()
        insert_ignoring_duplicates(
            conn,
            trust_evidence,
            {"sha256": sha, "kind": "timestamp", "content": stamp.token, "created_at": self.clock()},
        )
        return sha


def _aware(moment: datetime) -> datetime:
    return as_utc(moment)
