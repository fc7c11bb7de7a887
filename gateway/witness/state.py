"""The witness's own state: for each log, the newest checkpoint it cosigned (a small SQLite file).

The spec's warning (tlog-witness, add-checkpoint): checking the old size against the stored one and
storing the new checkpoint must be one atomic step, or two concurrent requests could roll the record
back.  Here both happen inside one ``BEGIN IMMEDIATE`` transaction, which SQLite gives to one
connection at a time across threads and processes; the cosignature is made and stored in it too, so
what is answered is what is on disk.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint TEXT NOT NULL,      -- the note as received, the log's signatures kept
    cosignature TEXT NOT NULL,     -- this witness's signature line(s) on it
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request TEXT NOT NULL          -- kept as possible proof of a log's misbehaviour (validly signed)
);
"""
KEEP_REFUSED = 1000  # per origin: evidence, bounded


@dataclass(frozen=True)
class Cosigned:
    origin: str
    size: int
    root: bytes
    checkpoint: str
    cosignature: str
    updated_at: int


class WitnessState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)  # executescript commits by itself

    def latest(self, origin: str) -> Cosigned | None:
        with self._transaction(write=False) as conn:
            return _row(conn, origin)

    def advance(self, origin: str, decide: Callable[[Cosigned | None], Cosigned | None]) -> Cosigned | None:
        """Run ``decide`` on the stored record under the write lock and store what it returns.

        ``decide`` raises to refuse (nothing changes) and returns the new record, or None to keep the
        old one; the whole of it is one transaction."""
        with self._transaction() as conn:
            current = _row(conn, origin)
            new = decide(current)
            if new is not None:
                conn.execute(
                    "INSERT INTO cosigned (origin, size, root, checkpoint, cosignature, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET size = excluded.size, "
                    "root = excluded.root, checkpoint = excluded.checkpoint, cosignature = excluded.cosignature, "
                    "updated_at = excluded.updated_at",
                    (new.origin, new.size, new.root, new.checkpoint, new.cosignature, new.updated_at),
                )
            return new or current

    def record_refusal(self, origin: str, status: int, reason: str, request: str) -> None:
        """Keep the evidence: each distinct request once, and the *first* ones once the room is full —
        the first fork is the proof, and nobody can push it out by sending more."""
        with self._transaction() as conn:
            kept = conn.execute("SELECT count(*) FROM refused WHERE origin = ?", (origin,)).fetchone()[0]
            known = conn.execute(
                "SELECT 1 FROM refused WHERE origin = ? AND request = ? LIMIT 1", (origin, request)
            ).fetchone()
            if kept >= KEEP_REFUSED or known is not None:
                return
            conn.execute(
                "INSERT INTO refused (origin, at, status, reason, request) VALUES (?, ?, ?, ?, ?)",
                (origin, int(time.time()), status, reason[:500], request),
            )

    def refusals(self, origin: str) -> list[tuple[int, int, str]]:
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT at, status, reason FROM refused WHERE origin = ? ORDER BY id", (origin,)
            ).fetchall()
        return [(int(a), int(s), str(r)) for a, s, r in rows]

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a cosigned size must survive a power cut
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _row(conn: sqlite3.Connection, origin: str) -> Cosigned | None:
    row = conn.execute(
        "SELECT origin, size, root, checkpoint, cosignature, updated_at FROM cosigned WHERE origin = ?", (origin,)
    ).fetchone()
    if row is None:
        return None
    return Cosigned(str(row[0]), int(row[1]), bytes(row[2]), str(row[3]), str(row[4]), int(row[5]))
