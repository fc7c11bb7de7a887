"""Backups and restores of the gateway's database, with the tools each engine provides for it.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot while
the gateway keeps serving — never ``cp`` of a WAL database.  PostgreSQL: ``pg_dump`` in its custom
format, restored with ``pg_restore --clean``.  A restore only replaces the database: ``keys/`` is
backed up apart (it holds the keys and the record of published checkpoints, which is what makes a
gateway restored from an old backup refuse to sign a checkpoint that forks its published log).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

Progress = Callable[[int, int], None]


class BackupError(Exception):
    pass


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database:
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq's tools want it (no ``+psycopg``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools (Debian: postgresql-client)")
    return str(found)


def _sqlite_copy(source: sqlite3.Connection, target: sqlite3.Connection, progress: Progress | None) -> None:
    """SQLite's online backup, page by page: a consistent copy even while the source is being written."""
    try:
        source.backup(
            target, pages=256, progress=(lambda _s, left, total: progress(total - left, total)) if progress else None
        )
    finally:
        target.close()
        source.close()


def backup(database_url: str, out: Path, progress: Progress | None = None) -> None:
    if database_url.startswith("sqlite"):
        _sqlite_copy(sqlite3.connect(_sqlite_path(database_url)), sqlite3.connect(out), progress)
        return
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own tool, the operator's URL
        [_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={out}", _libpq_url(database_url)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")


def restore(database_url: str, source: Path, progress: Progress | None = None) -> None:
    """Replace the database's contents with the backup's.  Stop the gateway's processes first."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    if database_url.startswith("sqlite"):
        backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            if backup_db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{source} is not a sound SQLite database")
        except sqlite3.DatabaseError as exc:
            backup_db.close()
            raise BackupError(f"{source} is not a SQLite database backup ({exc})") from None
        except BaseException:
            backup_db.close()
            raise
        _sqlite_copy(backup_db, sqlite3.connect(_sqlite_path(database_url)), progress)
        return
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own tool, the operator's URL
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            f"--dbname={_libpq_url(database_url)}",
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-500:]}")
