"""The audit log's origin: chosen once, then the log's name for good.

A checkpoint's first line names its log (C2SP tlog-checkpoint: the origin "should be unique to the
log and never change") and the signed note's key name is that same origin.  It used to be derived
from ``GATEWAY_PUBLIC_URL`` at every start, so serving on another port split one log into two
names (issue 11): an export across the change verified with neither verifier key.  Now the origin is
written to ``keys/audit-log.origin`` the first time a deployment starts, from the log's newest
checkpoint when it has one, and read from there ever after.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Config
from gateway.store.db import Database
from gateway.store.tables import audit_checkpoints


def _newest_checkpoint_origin(db: Database) -> str | None:
    try:
        with db.read() as conn:
            note = conn.execute(
                sa.select(audit_checkpoints.c.note).order_by(audit_checkpoints.c.size.desc()).limit(1)
            ).scalar_one_or_none()
    except SQLAlchemyError:  # not migrated yet: the log has no name so far
        return None
    return note.split("\n", 1)[0] if note else None


def pin_audit_origin(config: Config, db: Database) -> str:
    """The origin this deployment's log keeps; written to the keys folder on first use."""
    path = config.audit_origin_path
    if path.is_file():
        return config.audit_origin
    origin = _newest_checkpoint_origin(db) or config.audit_origin
    if config.keys_dir.is_dir():
        path.write_text(origin + "\n", encoding="utf-8")
    return origin
