"""SQLite's one writer is handed over by a blocking lock, between threads and between processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

from gateway.audit import AuditEvent, AuditLog
from gateway.store import upgrade
from gateway.store.db import Database

WRITES = 150
WRITER = """
import sys
from gateway.audit import AuditEvent, AuditLog
from gateway.store.db import Database
db, log = Database(sys.argv[1]), AuditLog()
for i in range(int(sys.argv[2])):
    with db.write() as conn:
        log.append(conn, AuditEvent("test.other-process", "ok"))
"""


def test_writers_in_two_processes_and_several_threads_all_commit_gap_free(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    upgrade(url)
    other = subprocess.Popen([sys.executable, "-c", WRITER, url, str(WRITES)], cwd=Path(__file__).parents[1])
    db, log = Database(url), AuditLog()

    def write() -> None:
        for _ in range(WRITES // 3):
            with db.write() as conn:
                log.append(conn, AuditEvent("test.this-process", "ok"))

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other.wait(timeout=120) == 0
    with db.read() as conn:
        indices = conn.execute(sa.text("SELECT idx FROM audit_entries ORDER BY idx")).scalars().all()
    assert indices == list(range(2 * WRITES))
    assert (tmp_path / "gw.db.writer-lock").exists()


def test_an_unusable_lock_file_leaves_writes_to_sqlites_own_locking(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """Review finding: a lock file another user created (0600) would have failed every write."""
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    upgrade(url)
    lock = tmp_path / "gw.db.writer-lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()  # cannot be opened for writing, as a file of another user
    db, log = Database(url), AuditLog()
    for _ in range(3):
        with db.write() as conn:
            log.append(conn, AuditEvent("test.write", "ok"))
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one() == 3
    assert "writer lock" in caplog.text
