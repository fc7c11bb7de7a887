"""Workbench sessions kept on the server (issue 10, finding 4).

A signed client-side cookie cannot be taken back: it was accepted after logout and after the
auditor role was removed.  Here the cookie carries a random token; the database keeps its SHA-256
(a leaked table holds no usable cookie), who it is, a CSRF token, and three limits: an absolute
lifetime, an idle lifetime, and the national-ID token's own expiry, whichever comes first.  Logout
ends the row, so a copied cookie stops working everywhere at once; the role itself is re-checked on
every request by the workbench (:mod:`gateway.web.blueprint`), against the configuration of the day.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.db import Database
from gateway.store.tables import workbench_sessions

WORKBENCH_COOKIE = "gateway_workbench"
Audit = Callable[[Connection], object]  # writes the audit entry of a change, in the change's transaction

# last_seen_at is written at most this often, so reading pages does not turn into a write each time.
TOUCH_EVERY_SECONDS = 30


@dataclass(frozen=True)
class WorkbenchSession:
    actor: str
    display: str
    csrf: str
    expires_at: int


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WorkbenchSessions:
    def __init__(
        self,
        db: Database,
        *,
        absolute_seconds: int,
        idle_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.absolute_seconds = absolute_seconds
        self.idle_seconds = idle_seconds
        self._clock = clock

    def start(
        self, actor: str, display: str, token_expires_at: int | None, *, audit: Audit | None = None
    ) -> tuple[str, WorkbenchSession]:
        """A new session; the returned token goes into the cookie and nowhere else.

        ``audit`` writes the audit entry in the same transaction, as every state change is audited.
        """
        now = int(self._clock())
        expires = now + self.absolute_seconds
        if token_expires_at is not None:
            expires = min(expires, int(token_expires_at))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._db.write() as conn:
            conn.execute(
                sa.insert(workbench_sessions).values(
                    token_sha256=_key(token),
                    actor=actor,
                    display=display[:300],
                    csrf=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                )
            )
            conn.execute(sa.delete(workbench_sessions).where(workbench_sessions.c.expires_at < now - 86400))
            if audit is not None:
                audit(conn)
        return token, WorkbenchSession(actor, display, csrf, expires)

    def current(self, token: str | None) -> WorkbenchSession | None:
        """The live session the cookie names, or None (unknown, ended, idle too long, or expired)."""
        if not token or len(token) > 128:
            return None
        now = int(self._clock())
        key = _key(token)
        with self._db.read() as conn:
            row = conn.execute(sa.select(workbench_sessions).where(workbench_sessions.c.token_sha256 == key)).first()
        if row is None or row.ended_at is not None or now >= row.expires_at:
            return None
        if now - row.last_seen_at >= self.idle_seconds:
            return None
        if now - row.last_seen_at >= TOUCH_EVERY_SECONDS:
            with self._db.write() as conn:
                conn.execute(
                    sa.update(workbench_sessions)
                    .where(workbench_sessions.c.token_sha256 == key, workbench_sessions.c.ended_at.is_(None))
                    .values(last_seen_at=now)
                )
        return WorkbenchSession(row.actor, row.display, row.csrf, row.expires_at)

    def end(self, token: str | None, *, audit: Audit | None = None) -> None:
        if token:
            self._end(workbench_sessions.c.token_sha256 == _key(token), audit)

    def end_all_for(self, actor: str, *, audit: Audit | None = None) -> int:
        """Every session of one person, e.g. when their role is withdrawn; how many were live."""
        return self._end(workbench_sessions.c.actor == actor, audit)

    def _end(self, which: sa.ColumnElement[bool], audit: Audit | None) -> int:
        with self._db.write() as conn:
            result = conn.execute(
                sa.update(workbench_sessions)
                .where(which, workbench_sessions.c.ended_at.is_(None))
                .values(ended_at=int(self._clock()))
            )
            if audit is not None and result.rowcount:
                audit(conn)
        return int(result.rowcount)
