"""The database handle: one engine per process, write transactions that never deadlock on SQLite.

SQLite's default deferred transactions take the write lock lazily, and a reader that later tries
to write fails with "database is locked" without waiting.  Writers therefore open their
transaction with ``BEGIN IMMEDIATE`` so concurrent gunicorn workers queue on ``busy_timeout``
instead.  PostgreSQL needs none of this.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.store.group_commit import GroupCommit, WriteUnit

T = TypeVar("T")
_PROCESS_LOCKS: dict[str, threading.Lock] = {}  # an in-memory SQLite database is one process's
_IMMEDIATE = "gateway_sqlite_immediate"
log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be reached; callers answer 503 rather than accept what they cannot store."""


class Database:
    """Engine plus the two ways the code talks to it: ``read()`` and ``write()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _create_engine(url)
        self._writer = _SqliteWriterLock(url) if self.is_sqlite else None
        self.group_commit = GroupCommit(self.write)

    def write_grouped(self, unit: WriteUnit[T]) -> T:
        """``unit`` in a committed transaction, shared with other threads' units (gateway.store.group_commit).

        Errors read as :meth:`write`'s do, whether the unit failed in its savepoint or the batch failed."""
        try:
            return self.group_commit.run(unit)
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that commits on success and rolls back on any exception."""
        try:
            with self._writer or nullcontext(), self.engine.connect() as conn:
                if self.is_sqlite:
                    conn.execution_options(**{_IMMEDIATE: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this caller, alone among every process using the database, holds ``name`` for the block.

        Never waits: a job someone else is doing right now (sending checkpoints to witnesses) is skipped.
        PostgreSQL: a session advisory lock; SQLite: a lock file beside the database."""
        if not self.is_sqlite:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            with self.engine.connect() as conn:
                held = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
                try:
                    yield held
                finally:
                    if held:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        path = sa.engine.make_url(self.url).database
        lock_path = Path(f"{path}.{name}.lock") if path and path != ":memory:" else None
        if lock_path is None:
            lock = _PROCESS_LOCKS.setdefault(name, threading.Lock())
            if not lock.acquire(blocking=False):
                yield False
                return
            try:
                yield True
            finally:
                lock.release()
            return
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except (DBAPIError, sa.exc.SQLAlchemyError):
            return False

    def dispose(self) -> None:
        self.engine.dispose()


class _SqliteWriterLock(AbstractContextManager[None]):
    """SQLite's one writer, taken by a blocking lock instead of SQLite's own busy wait.

    A writer that finds the database locked sleeps in SQLite's busy handler for 1, 2, 5 … up to
    100 ms at a time, however soon the lock is freed: with two gunicorn workers writing, most of a
    submission's latency was that sleep.  Writers of this process queue on a thread lock, and the
    processes on ``flock`` of a file beside the database, which wakes the next writer as soon as
    the last one commits.  SQLite's own locking stays the authority: ``BEGIN IMMEDIATE`` still runs
    (with its busy timeout) for writers that do not use this class."""

    def __init__(self, url: str) -> None:
        path = sa.engine.make_url(url).database
        self._path = f"{path}.writer-lock" if path and path != ":memory:" else None
        self._threads = threading.RLock()  # re-entered, a nested write fails on SQLite's timeout, not here
        self._depth = 0  # changed only by the thread holding ``_threads``
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._path is None or self._depth > 1:
            return
        try:
            if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
                try:
                    self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o660), os.getpid()
                except OSError as exc:  # e.g. created by another user: SQLite's own locking still holds
                    log.warning(
                        "SQLite writer lock %s unusable (%s); writers wait in SQLite's busy handler", self._path, exc
                    )
                    self._path = None
                    return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._depth -= 1
            self._threads.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            if self._depth == 1 and self._fd is not None and self._path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._depth -= 1
            self._threads.release()


def is_lock_conflict(exc: BaseException) -> bool:
    """PostgreSQL broke a deadlock or a serialization conflict by failing this statement: worth a retry."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _is_connection_error(exc: OperationalError) -> bool:
    """The database is out of reach — not a busy SQLite, and not a lock conflict PostgreSQL broke (retried)."""
    if is_lock_conflict(exc) and not exc.connection_invalidated:
        return False
    return bool(exc.connection_invalidated) or not str(exc.orig).startswith("database is locked")


def fold_text(text: str | None) -> str | None:
    """Text as searches compare it: NFC (typed and stored Vietnamese agree), lower case in every script."""
    return unicodedata.normalize("NFC", text).lower() if text is not None else None


def without_marks(text: str) -> str:
    """Folded text without its tone and vowel marks (``Quận`` → ``quan``, ``Đ`` → ``d``), for people who
    type Vietnamese without them; matching in Python only (no database we run on strips marks alike)."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def fold_sql(conn: Connection, column: Any) -> Any:
    """The database's folding of ``column``, the same as :func:`fold_text`.

    On PostgreSQL ``normalize(…, NFC)`` then ``lower``, which folds Vietnamese under a UTF-8
    LC_CTYPE (create the database with one: under ``C`` lower folds ASCII only)."""
    if conn.dialect.name == "sqlite":
        return sa.func.gateway_fold(column)
    return sa.func.lower(sa.func.normalize(column, sa.literal_column("NFC")))


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see module docstring
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's lower() folds ASCII only: "Ủy ban" would never match "ủy ban" (review finding).
        dbapi_connection.create_function("gateway_fold", 1, fold_text, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
