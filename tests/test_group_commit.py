"""Group commit: concurrent audit appends share commits without giving up gap-free indices,
monotonic time, or "returned means committed"."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import AuditBatch, AuditEvent, AuditLog
from gateway.store import upgrade
from gateway.store.db import Database
from gateway.store.group_commit import GroupCommit
from tests.support import reset_database

WRITERS = 16


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    if not database.is_sqlite:  # SQLite: a new file per test
        reset_database(database)
    yield database
    database.dispose()


@pytest.fixture(params=["audit batched", "audit unit by unit"])
def group(request: pytest.FixtureRequest, db: Database) -> GroupCommit:
    """The production wiring (the audit log joins each batch) and the plain one: both must keep the log whole."""
    group = GroupCommit(db.write)
    if request.param == "audit batched":
        group.add_hook(AuditBatch)
    return group


def stored(db: Database) -> list[Any]:
    with db.read() as conn:
        return conn.execute(sa.text("SELECT idx, time_us, event FROM audit_entries ORDER BY idx")).all()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``count`` threads started together: what each returned, or the exception it raised."""
    outcomes: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = work(i)
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def appender(log: AuditLog, *, fail: set[int] = frozenset(), hold_first: bool = True) -> Callable[[int], Any]:
    """A unit per writer ``i`` that appends ``test.i``; the first to run holds its commit open so others queue."""
    first = threading.Event()

    def unit_for(i: int) -> Callable[[Connection], int]:
        def unit(conn: Connection) -> int:
            if hold_first and not first.is_set():
                first.set()
                time.sleep(0.3)
            index = log.append(conn, AuditEvent(f"test.{i}", "ok")).index
            if i in fail:
                raise ValueError(f"writer {i} fails after appending")
            return index

        return unit

    return unit_for


def test_concurrent_appends_share_commits_and_stay_gap_free_and_monotonic(db, group):
    unit_for = appender(AuditLog())
    indices = in_threads(WRITERS, lambda i: group.run(unit_for(i)))
    assert sorted(indices) == list(range(WRITERS))
    assert group.batches < WRITERS  # the writers that queued behind the first committed together
    rows = stored(db)
    assert [r.idx for r in rows] == list(range(WRITERS))
    assert all(a.time_us <= b.time_us for a, b in itertools.pairwise(rows))
    assert {r.event for r in rows} == {f"test.{i}" for i in range(WRITERS)}


def test_a_failing_unit_is_undone_alone_and_the_others_indices_close_the_gap(db, group):
    fail = {3, 7, 11}
    unit_for = appender(AuditLog(), fail=fail)
    outcomes = in_threads(WRITERS, lambda i: group.run(unit_for(i)))
    for i in fail:
        assert isinstance(outcomes[i], ValueError)
    kept = [o for i, o in enumerate(outcomes) if i not in fail]
    assert sorted(kept) == list(range(WRITERS - len(fail)))
    rows = stored(db)
    assert [r.idx for r in rows] == list(range(WRITERS - len(fail)))
    assert {r.event for r in rows} == {f"test.{i}" for i in range(WRITERS) if i not in fail}


def test_when_the_commit_fails_every_unit_of_the_batch_raises_and_nothing_is_stored(db):
    @contextmanager
    def write_that_fails_to_commit() -> Iterator[Connection]:
        with db.write() as conn:
            yield conn
            raise sa.exc.OperationalError("COMMIT", {}, Exception("disk full"))

    group = GroupCommit(write_that_fails_to_commit)
    group.add_hook(AuditBatch)
    unit_for = appender(AuditLog())
    outcomes = in_threads(WRITERS, lambda i: group.run(unit_for(i)))
    assert all(isinstance(o, Exception) and "disk full" in str(o) for o in outcomes), outcomes
    assert stored(db) == []
    with db.read() as conn:
        assert AuditLog().size(conn) == 0


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(" ".join(sql.split()[:2]).upper())

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def test_a_lone_unit_commits_without_waiting_or_a_savepoint(db, group):
    with statements(db) as seen:
        index = group.run(lambda conn: AuditLog().append(conn, AuditEvent("test.alone", "ok")).index)
    assert index == 0 and not any(s.startswith("SAVEPOINT") for s in seen)


def test_a_batch_takes_the_sequencer_once_and_writes_each_table_once(db):
    group = GroupCommit(db.write)
    group.add_hook(AuditBatch)
    unit_for = appender(AuditLog())
    with statements(db) as seen:
        in_threads(WRITERS, lambda i: group.run(unit_for(i)))
    sequencer = [s for s in seen if s == "UPDATE AUDIT_HEAD"]
    entries = [s for s in seen if s == "INSERT INTO"]
    # per batch: the sequencer locked and read once and written once (a lone unit: one statement does both)
    assert group.batches <= len(sequencer) <= 2 * group.batches
    assert group.batches < WRITERS and len(entries) == 3 * group.batches  # entries, search rows, subtrees


def test_refusals_audited_by_concurrent_requests_all_land_gap_free(db):
    """``AuditLog.record`` (every refusal and login) goes through the database's group commit."""
    from gateway.policy import Refusal

    log = AuditLog()
    in_threads(WRITERS, lambda i: log.refused(db, "document.refused", Refusal("schema-invalid", f"#{i}")))
    rows = stored(db)
    assert [r.idx for r in rows] == list(range(WRITERS)) and {r.event for r in rows} == {"document.refused"}


def test_two_workers_sent_the_same_document_queue_instead_of_deadlocking(database_url):
    """Review finding: a batch held the audit sequencer while a later unit waited on another worker's
    uncommitted copy of the same content-addressed row, which in turn waited on the sequencer."""
    import hashlib

    from gateway.store.helpers import insert_ignoring_duplicates
    from gateway.store.tables import blobs

    upgrade(database_url)
    first, second = Database(database_url), Database(database_url)
    if not first.is_sqlite:
        reset_database(first)
    for worker in (first, second):
        worker.group_commit.add_hook(AuditBatch)
    log, data = AuditLog(), b"the same signed document" * 20
    row = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "content": data}

    def submission_that_lingers(conn: Connection) -> int:  # content first, then (a moment later) its audit entry
        insert_ignoring_duplicates(conn, blobs, row)
        time.sleep(0.5)
        return log.append(conn, AuditEvent("document.accepted", "accepted")).index

    def refusal_then_the_same_document(conn: Connection) -> int:  # what a batch of two units does
        log.append(conn, AuditEvent("document.refused", "refused"))
        insert_ignoring_duplicates(conn, blobs, row)
        return log.append(conn, AuditEvent("document.accepted", "accepted")).index

    def run(i: int) -> Any:
        if i == 0:
            return second.group_commit.run(submission_that_lingers)
        time.sleep(0.15)  # the other worker holds the content row by now
        return first.group_commit.run(refusal_then_the_same_document)

    started = time.monotonic()
    outcomes = in_threads(2, run)
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert time.monotonic() - started < 5
    assert [r.idx for r in stored(first)] == [0, 1, 2]
    for worker in (first, second):
        worker.dispose()


def test_grouped_writes_read_errors_as_plain_writes_do_and_a_lock_conflict_stays_retryable(db):
    """A broken connection is "database unavailable" (503) alone or in a batch; a deadlock PostgreSQL broke
    is not — it stays a DBAPIError the submission path runs again (review: a lone unit's deadlock read as 503)."""
    import psycopg.errors

    from gateway.store.db import DatabaseUnavailable, is_lock_conflict

    def failing(orig: BaseException) -> Callable[[Connection], None]:
        def unit(conn: Connection) -> None:
            raise sa.exc.OperationalError("UPDATE audit_head", {}, orig)

        return unit

    with pytest.raises(DatabaseUnavailable):
        db.write_grouped(failing(Exception("server closed the connection unexpectedly")))
    with pytest.raises(sa.exc.OperationalError) as conflict:
        db.write_grouped(failing(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert is_lock_conflict(conflict.value) and not isinstance(conflict.value, DatabaseUnavailable)
