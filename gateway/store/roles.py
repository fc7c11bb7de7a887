"""The PostgreSQL role the gateway runs as, apart from the role that owns the schema.

The owner migrates (``gateway init``, ``gateway db upgrade``); the gateway's servers and workers
connect as a runtime role that may read and append to the audit log but never alter, drop, truncate,
update or delete it (issue 13).  Triggers refuse UPDATE, DELETE and TRUNCATE even for the owner, but
an owner can drop a trigger: only a role that owns nothing cannot.  Every other table the runtime
role may read and change as the gateway needs to, never ALTER or TRUNCATE.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import APPEND_ONLY_TABLES, metadata

# Append-only: the log's entries, its stored subtree hashes and its signed checkpoints.
LOG_TABLES = APPEND_ONLY_TABLES


class RoleProblem(Exception):
    """The runtime role cannot be set up as asked; the message says what to do."""


def runtime_grants(conn: Connection, role: str) -> list[str]:
    """The statements that give ``role`` exactly the runtime privileges, from none."""
    quote = conn.dialect.identifier_preparer.quote
    who = quote(role)
    others = [t.name for t in metadata.sorted_tables if t.name not in LOG_TABLES]
    return [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {who}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {who}",
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT SELECT, INSERT ON {', '.join(quote(t) for t in LOG_TABLES)} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(quote(t) for t in others)} TO {who}",
        f"GRANT SELECT ON alembic_version TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
    ]


def grant_runtime_role(conn: Connection, role: str) -> list[str]:
    """Give ``role`` the runtime privileges (run as the schema's owner); the statements run are returned."""
    if conn.dialect.name != "postgresql":
        raise RoleProblem("roles are PostgreSQL's: an embedded SQLite database is protected by its file's permissions")
    exists = conn.execute(sa.text("SELECT rolsuper, rolname FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if exists is None:
        raise RoleProblem(
            f"there is no role {role!r}: create it first, e.g. CREATE ROLE {role} LOGIN PASSWORD '…', "
            "then run this again"
        )
    if exists.rolsuper:
        raise RoleProblem(f"{role!r} is a superuser, which no privilege can restrict: use an ordinary role")
    owner = conn.execute(
        sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'audit_entries'")
    ).scalar()
    if owner is None:
        raise RoleProblem("the schema is not there yet: run `gateway init` (or `gateway db upgrade`) as its owner")
    if owner == role:
        raise RoleProblem(f"{role!r} owns the tables: the runtime role must be another one than the owner")
    statements = runtime_grants(conn, role)
    for statement in statements:
        conn.execute(sa.text(statement))
    return statements
