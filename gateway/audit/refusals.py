"""Refusals of requests nobody authenticated: counted, and audited as one summary per kind and source.

One permanent entry per unauthenticated refusal let anyone grow the log at the speed they could
send garbage (issue 13: ~200 entries/s from one client, and legitimate submissions slowed ninefold
waiting for the sequencer).  What an auditor needs from those refusals is *that* they happened,
*how often*, *from where* and *what they claimed*: so each server process counts them in memory
and, every ``refusal_summary_seconds``, appends one ``<event>`` entry per (event, code, source,
claimed identity) with ``count`` and ``since``.  The number of distinct summaries per interval is
capped; refusals past the cap are folded into one summary with ``source`` ``"other"``, so the
entries a flood adds per interval are bounded whatever the attacker varies.

A claimed but unverified identity (the ``client_id`` of a refused token request, the ``iss`` of a
refused citizen token) is kept as ``claimed_actor`` / ``issuer``, never as ``actor``: an agency
does not appear in auditors' searches because someone typed its code.

Refusals of callers who *did* prove who they are (a valid token without the role, a disabled
agency, a refused document) stay one entry each, with their verified ``actor``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.audit.log import AuditEvent, AuditLog
from gateway.policy import Refusal
from gateway.store.db import Database

log = logging.getLogger(__name__)

OTHER_SOURCES = "other"
MAX_FIELD_CHARS = 64


@dataclass(frozen=True)
class RefusalKind:
    """What makes two refusals the same line of a summary."""

    event: str
    code: str
    source: str
    claimed_actor: str | None = None
    issuer: str | None = None


@dataclass
class _Tally:
    count: int
    since: datetime
    reason: str  # the latest refusal's reason: what the caller was told


class UnauthenticatedRefusals:
    """This process's count of unauthenticated refusals since the last summary.

    ``count`` is cheap and takes no database connection, so a flood costs the request path a dict
    update; ``flush`` writes the summaries, from the background tick and at shutdown."""

    def __init__(
        self,
        *,
        interval_seconds: float = 60.0,
        max_kinds: int = 200,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_kinds < 1:
            raise ValueError("max_kinds must be at least 1: a summary needs somewhere to count")
        self._interval = interval_seconds
        self._max_kinds = max_kinds
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[RefusalKind, _Tally] = {}
        self._last_flush = clock()

    def count(
        self,
        event: str,
        refusal: Refusal,
        source: str | None,
        *,
        claimed_actor: str | None = None,
        issuer: str | None = None,
    ) -> None:
        kind = RefusalKind(event, refusal.code, _short(source) or "unknown", _short(claimed_actor), _short(issuer))
        now = self._clock()
        with self._lock:
            tally = self._tallies.get(kind)
            if tally is None and len(self._tallies) >= self._max_kinds:
                kind = RefusalKind(event, refusal.code, OTHER_SOURCES)
                tally = self._tallies.get(kind)
            if tally is None:
                self._tallies[kind] = _Tally(1, now, refusal.reason)
            else:
                tally.count += 1
                tally.reason = refusal.reason

    def pending(self) -> int:
        with self._lock:
            return sum(t.count for t in self._tallies.values())

    def due(self) -> bool:
        return (self._clock() - self._last_flush).total_seconds() >= self._interval

    def flush_if_due(self, db: Database, audit: AuditLog) -> int:
        return self.flush(db, audit) if self.due() else 0

    def flush(self, db: Database, audit: AuditLog) -> int:
        """Append one summary entry per kind counted since the last flush; the number appended.

        The tallies are taken before writing: refusals counted meanwhile go to the next summary.
        If the database is away the taken tallies are put back, so nothing counted is lost."""
        with self._lock:
            taken, self._tallies = self._tallies, {}
            self._last_flush = self._clock()
        if not taken:
            return 0
        events = [_summary(kind, tally) for kind, tally in taken.items()]
        try:
            with db.write() as conn:
                audit.append_many(conn, events)
        except Exception:
            with self._lock:
                for kind, tally in taken.items():
                    kept = self._tallies.setdefault(kind, _Tally(0, tally.since, tally.reason))
                    kept.count += tally.count
                    kept.since = min(kept.since, tally.since)
            raise
        return len(events)

    def flush_quietly(self, db: Database, audit: AuditLog) -> None:
        try:
            self.flush_if_due(db, audit)
        except Exception:  # the tick must go on; the tallies were kept for the next try
            log.warning("summarising unauthenticated refusals failed; kept for the next try", exc_info=True)


def _summary(kind: RefusalKind, tally: _Tally) -> AuditEvent:
    return AuditEvent(
        event=kind.event,
        outcome="refused",
        code=kind.code,
        reason=tally.reason,
        source=kind.source,
        claimed_actor=kind.claimed_actor,
        issuer=kind.issuer,
        count=tally.count,
        since=tally.since.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def _short(value: str | None) -> str | None:
    return value[:MAX_FIELD_CHARS] if value else None
