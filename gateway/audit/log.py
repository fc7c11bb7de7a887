"""Append-only audit entries with gap-free indices.

Each entry is a versioned UTF-8 JSON object, stored and later hashed byte-for-byte (a later
change builds an RFC 9162 Merkle tree over exactly these bytes, so the encoding is canonical:
sorted keys, no insignificant white space).  Indices come from one sequencer row locked with
``UPDATE … RETURNING``: a rolled-back transaction releases its number, so the log never has
gaps, and time is clamped so that it never goes backwards, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.merkle import NodeRecorder, RangeHasher, hash_children, hash_leaf, split_point
from gateway.policy import Refusal
from gateway.store.db import Database
from gateway.store.tables import audit_entries, audit_head, audit_nodes, audit_search

# Version 2 (issue 13): every entry carries a random salt, so the sibling leaf hashes any public
# inclusion proof or tile hands out cannot be matched against guessed entries (an agency code, an
# event name and a time are few enough to try all).  Version 1 entries (no salt) stay verifiable:
# verifiers hash the stored bytes and never rebuild an entry.
ENTRY_VERSION = 2
UNSALTED_VERSION = 1
SALT_BYTES = 16
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class AuditEvent:
    """What happened.  No document content and no personal data beyond what is named here."""

    event: str
    outcome: str  # "accepted" | "refused" | "ok"
    actor: str | None = None
    document: str | None = None  # the gateway's document id
    document_id: str | None = None  # the edXML DocumentId
    # The DocumentId a refused submission said it was (or answered), never verified: what an auditor
    # searches by when asked why a document was refused.
    claimed_document_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    sha256: str | None = None
    signature: str | None = None  # signature result, e.g. "valid rsa-sha256 <fingerprint>"
    message: str | None = None  # the gateway id of a status message about ``document``
    status_code: str | None = None
    issuer: str | None = None  # national-ID issuer, for citizen events
    procedure: str | None = None  # administrative procedure code, for dossier events
    dossier: str | None = None  # the gateway's dossier id, for ratings (never its document: receipts leave it out)
    rating: int | None = None  # a citizen's satisfaction score, 1-5 (dossier.rated)
    comment_hash: str | None = None  # HMAC-SHA256 (the pepper) of the rating's comment
    reason: str | None = None
    code: str | None = None
    # A summary of unauthenticated refusals (gateway.audit.refusals): what was claimed, never verified,
    # from which address, how many since when.
    claimed_actor: str | None = None
    source: str | None = None
    count: int | None = None
    since: str | None = None


@dataclass(frozen=True)
class AppendedEntry:
    index: int
    time: datetime
    body: bytes
    time_us: int  # ``time`` exactly as stored


class AuditLog:
    """The one small interface every other package uses to record what happened."""

    def append(self, conn: Connection, event: AuditEvent, *, now: datetime | None = None) -> AppendedEntry:
        return self.append_many(conn, [event], now=now)[0]

    def append_many(
        self, conn: Connection, events: Sequence[AuditEvent], *, now: datetime | None = None
    ) -> list[AppendedEntry]:
        """Append several entries with consecutive indices and one time.

        Inside a group-commit batch the entries are numbered at once and written with the rest of
        the batch just before it commits (:class:`AuditBatch`); otherwise in the statements here."""
        if not events:
            return []
        wanted_us = _to_us(now or datetime.now(UTC))
        batch = conn.info.get(AuditBatch.KEY)
        if isinstance(batch, AuditBatch):
            return batch.append(events, wanted_us)
        row = conn.execute(
            sa.update(audit_head)
            .where(audit_head.c.id == 1)
            .values(
                size=audit_head.c.size + len(events),
                last_time_us=sa.case(
                    (audit_head.c.last_time_us > wanted_us, audit_head.c.last_time_us), else_=wanted_us
                ),
            )
            .returning(audit_head.c.size, audit_head.c.last_time_us)
        ).one()
        first, time_us = int(row.size) - len(events), int(row.last_time_us)
        appended = _numbered(first, time_us, events)
        write_entries(conn, appended, events)
        return appended

    def record(self, db: Database, event: AuditEvent) -> None:
        """One entry, with nothing else of the request (a login, a refusal); committed with others' if they wait."""
        db.write_grouped(lambda conn: self.append(conn, event))

    def refused(self, db: Database, event: str, refusal: Refusal, **fields: Any) -> None:
        """Audit a refusal in its own transaction: nothing else of the refused request is written."""
        refused = AuditEvent(event=event, outcome="refused", code=refusal.code, reason=refusal.reason)
        self.record(db, replace(refused, **fields))

    def entries_for_document(self, conn: Connection, document: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(audit_entries.c.body).where(audit_entries.c.document == document).order_by(audit_entries.c.idx)
        )
        return [json.loads(r.body) for r in rows]

    def size(self, conn: Connection) -> int:
        return int(conn.execute(sa.select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())


# Built once: constructing a statement costs about as much as SQLite takes to run it.
_LOCK_HEAD = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1)
    .values(size=audit_head.c.size)  # takes the sequencer's row lock until the batch commits
    .returning(audit_head.c.size, audit_head.c.last_time_us)
)
_WRITE_HEAD = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1)
    .values(size=sa.bindparam("size"), last_time_us=sa.bindparam("last_us"))
)
_INSERT_ENTRIES = sa.insert(audit_entries)
_INSERT_SEARCH = sa.insert(audit_search)
_INSERT_NODES = sa.insert(audit_nodes)


class AuditBatch:
    """The audit appends of one group-commit batch (gateway.store.group_commit).

    The sequencer row is locked and read once, when the batch opens; entries are numbered in memory
    as units run, a unit rolled back to its savepoint gives its numbers back to the next one, and
    everything is written in one statement per table just before the batch commits.  Gap-free
    indices and monotonic time hold as before: the lock is held from the batch's start to its
    commit, and each time is clamped to the last."""

    KEY = "gateway.audit.batch"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._head: tuple[int, int] | None = None  # (next index, last time in µs) once locked
        self._pending: list[tuple[AppendedEntry, AuditEvent]] = []
        self._info = conn.info  # kept: the connection is closed by the time the batch is
        self._info[self.KEY] = self
        # The sequencer first, before any unit writes: every batch then takes its locks in the same order
        # (audit head, then content-addressed rows), so two workers' batches queue instead of deadlocking
        # on a document both were sent (review finding: head then blob here, blob then head there).
        self._lock()

    def _lock(self) -> None:
        row = self._conn.execute(_LOCK_HEAD).one()
        self._head = (int(row.size), int(row.last_time_us))

    def append(self, events: Sequence[AuditEvent], wanted_us: int) -> list[AppendedEntry]:
        if self._head is None:
            self._lock()
        assert self._head is not None
        first, last_us = self._head
        time_us = max(last_us, wanted_us)
        appended = _numbered(first, time_us, events)
        self._pending.extend(zip(appended, events, strict=True))
        self._head = (first + len(events), time_us)
        return appended

    def mark(self) -> object:
        return self._head, len(self._pending)

    def undo(self, mark: object) -> None:
        assert isinstance(mark, tuple)
        self._head = mark[0]
        del self._pending[mark[1] :]

    def flush(self) -> None:
        if not self._pending or self._head is None:
            return
        size, last_us = self._head
        self._conn.execute(_WRITE_HEAD, {"size": size, "last_us": last_us})
        write_entries(self._conn, [a for a, _ in self._pending], [e for _, e in self._pending])

    def close(self) -> None:
        self._info.pop(self.KEY, None)


def _numbered(first: int, time_us: int, events: Sequence[AuditEvent]) -> list[AppendedEntry]:
    time = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    return [
        AppendedEntry(first + i, time, encode_entry(first + i, time, e, new_salt()), time_us)
        for i, e in enumerate(events)
    ]


def write_entries(conn: Connection, appended: Sequence[AppendedEntry], events: Sequence[AuditEvent]) -> None:
    """The entries, their search rows and the Merkle subtrees they complete, for consecutive indices."""
    conn.execute(
        _INSERT_ENTRIES,
        [
            {"idx": a.index, "time_us": a.time_us, "event": e.event, "document": e.document, "body": a.body}
            for a, e in zip(appended, events, strict=True)
        ],
    )
    conn.execute(
        _INSERT_SEARCH,
        [
            {
                "idx": a.index,
                "time_us": a.time_us,
                "event": e.event,
                "outcome": e.outcome,
                "actor": (e.actor or "")[:128] or None,
                "claimed_actor": e.claimed_actor,
                "sender": e.sender,
                "recipient": e.recipient,
                "document": e.document,
                "document_id": (e.document_id or e.claimed_document_id or "")[:255] or None,
            }
            for a, e in zip(appended, events, strict=True)
        ],
    )
    _append_nodes(conn, appended)


def _append_nodes(conn: Connection, appended: Sequence[AppendedEntry]) -> None:
    """Store the leaf hashes and every perfect subtree the new leaves complete (RFC 9162 §2.1.1)."""
    first = appended[0].index
    older = set()  # left siblings completed before these leaves: fetched in one query
    for entry in appended:
        level, i = 0, entry.index
        while i & 1:
            if i << level <= first:  # the sibling's last leaf precedes the batch: stored earlier
                older.add((level, i - 1))
            level, i = level + 1, i >> 1
    nodes: dict[tuple[int, int], bytes] = stored_nodes(conn, older)
    for entry in appended:
        level, i = 0, entry.index
        h = nodes[(0, i)] = hash_leaf(entry.body)
        while i & 1:
            h = hash_children(nodes[(level, i - 1)], h)
            level, i = level + 1, i >> 1
            nodes[(level, i)] = h
    conn.execute(
        _INSERT_NODES,
        [{"level": lv, "idx": i, "hash": h} for (lv, i), h in nodes.items() if (lv, i) not in older],
    )


def new_salt() -> bytes | None:
    """128 random bits per entry: more than anyone can search, whatever the rest of the entry is."""
    return os.urandom(SALT_BYTES)


def encode_entry(index: int, time: datetime, event: AuditEvent, salt: bytes | None) -> bytes:
    """The canonical bytes of one entry; ``salt`` None writes the unsalted version 1 layout."""
    fields: dict[str, Any] = {k: v for k, v in asdict(event).items() if v is not None}
    if "reason" in fields:
        fields["reason"] = fields["reason"][:MAX_REASON_CHARS]
    fields.update(index=index, time=time.isoformat(timespec="microseconds").replace("+00:00", "Z"))
    if salt is None:
        fields["v"] = UNSALTED_VERSION
    else:
        fields.update(v=ENTRY_VERSION, salt=base64.urlsafe_b64encode(salt).rstrip(b"=").decode("ascii"))
    # "replace": a lone surrogate that reached an entry's text (it is not text; issue 11 review) is
    # written as "?" rather than failing the write and leaving the refusal it records unrecorded.
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def _to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def stored_nodes(conn: Connection, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Several stored subtree hashes in one query; every one must exist."""
    if not wanted:
        return {}
    params = {}
    for k, (level, index) in enumerate(sorted(wanted)):
        params[f"l{k}"], params[f"i{k}"] = level, index
    rows = conn.execute(_nodes_query(len(wanted)), params).all()
    found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
    missing = wanted - found.keys()
    if missing:
        raise LookupError(f"audit subtrees {sorted(missing)[:3]} are missing: the stored log is damaged")
    return found


@functools.lru_cache(maxsize=128)
def _nodes_query(count: int) -> sa.Select[Any]:
    """``count`` subtrees by (level, index), built once per count: building it per call cost more than running it.

    An OR of equalities rather than a row-value IN: both SQLite and PostgreSQL then use the primary key."""
    return sa.select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(
        sa.or_(
            *(
                sa.and_(audit_nodes.c.level == sa.bindparam(f"l{k}"), audit_nodes.c.idx == sa.bindparam(f"i{k}"))
                for k in range(count)
            )
        )
    )


def stored_node(conn: Connection, level: int, index: int) -> bytes:
    found = conn.execute(
        sa.select(audit_nodes.c.hash).where(audit_nodes.c.level == level, audit_nodes.c.idx == index)
    ).scalar_one_or_none()
    if found is None:
        raise LookupError(f"audit subtree ({level}, {index}) is missing: the stored log is damaged")
    return bytes(found)


class StoredTree:
    """RFC 9162 range hashes from the stored perfect subtrees, memoised for one request.

    ``prefetch`` runs a computation once against a :class:`NodeRecorder` to learn which subtrees it
    reads — they depend only on indices and sizes, never on hashes — and loads them in one query.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._memo: dict[tuple[int, int], bytes] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}

    def prefetch(self, computation: Callable[[RangeHasher], object]) -> StoredTree:
        recorder = NodeRecorder()
        computation(recorder)
        self._nodes.update(stored_nodes(self._conn, recorder.needed - self._nodes.keys()))
        return self

    def hash_range(self, start: int, end: int) -> bytes:
        key = (start, end)
        if key not in self._memo:
            n = end - start
            if n & (n - 1) == 0 and start % n == 0:
                level = n.bit_length() - 1
                node = (level, start >> level)
                self._memo[key] = self._nodes[node] if node in self._nodes else stored_node(self._conn, *node)
            else:
                k = split_point(n)
                self._memo[key] = hash_children(self.hash_range(start, start + k), self.hash_range(start + k, end))
        return self._memo[key]
