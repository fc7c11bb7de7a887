"""The audit log's origin: chosen once, then the log's name for good.

A checkpoint's first line names its log (C2SP tlog-checkpoint: the origin "should be unique to the
log and never change") and the signed note's key name is that same origin.  It used to be derived
from ``GATEWAY_PUBLIC_URL`` at every start, so serving on another port split one log into two
names (issue 11): an export across the change verified with neither verifier key.

The log names itself: once it has a checkpoint, the newest one's origin is the name, whatever the
public URL says now.  Before that, ``keys/audit-log.origin`` (when present and not empty), else the
public URL, names a new log.  The file is written when it can be — a keys folder mounted read-only
(the Dockerfile's advice) stays untouched, and nothing depends on it once a checkpoint exists.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Config
from gateway.store.db import Database, DatabaseUnavailable
from gateway.store.tables import audit_checkpoints

log = logging.getLogger("gateway.audit")


def newest_checkpoint_origin(db: Database) -> str | None:
    if db.is_sqlite:
        path = sa.engine.make_url(db.url).database
        if path and path != ":memory:" and not Path(path).is_file():
            return None  # no database yet (`gateway audit vkey` before `init`): none is made here
    try:
        with db.read() as conn:
            note = conn.execute(
                sa.select(audit_checkpoints.c.note).order_by(audit_checkpoints.c.size.desc()).limit(1)
            ).scalar_one_or_none()
    except SQLAlchemyError:  # not migrated yet: the log has no name so far
        return None
    except DatabaseUnavailable:  # the server starts anyway (readiness says why); the file or URL names it
        log.warning("the database is unreachable: the audit log's name is taken from keys/ or the public URL")
        return None
    return note.split("\n", 1)[0] if note else None


def pin_audit_origin(config: Config, db: Database) -> Config:
    """``config`` naming the log as the log names itself; ``keys/audit-log.origin`` recorded when possible."""
    origin = newest_checkpoint_origin(db) or config.audit_origin
    path = config.audit_origin_path
    try:
        recorded = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        if recorded != origin and config.keys_dir.is_dir():
            path.write_text(origin + "\n", encoding="utf-8")
    except OSError as exc:  # read-only keys: the database's checkpoints carry the name anyway
        log.info("cannot record the audit log's origin in %s (%s)", path, exc.strerror)
    return dataclasses.replace(config, pinned_origin=origin)
