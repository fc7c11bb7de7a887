"""Documents' bytes in and out of ``blobs`` without the database driver's whole copies.

A row bound or fetched whole costs SQLite two copies of the value beside the caller's (the bound
parameter, then the record it is built into; on reading, the assembled overflow pages, then Python's
bytes), which for a 200 MB attachment is most of a worker's memory.  SQLite's incremental blob I/O
(``sqlite3_blob_open``, Python's ``Connection.blobopen``) reads and writes the stored value in place, a
piece at a time, inside the caller's transaction.  PostgreSQL's driver streams parameters and results
itself, so there the plain statements stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.helpers import insert_ignoring_duplicates
from gateway.store.tables import blobs

# Below this a value goes through the plain statement: two small copies cost less than three statements.
IN_PLACE_BYTES = 1 << 20
PIECE_BYTES = 1 << 20


def store_blob(conn: Connection, sha256: str, data: bytes) -> None:
    """Keep ``data`` under its digest once (content-addressed: a second copy is never written)."""
    if conn.dialect.name != "sqlite" or len(data) < IN_PLACE_BYTES:
        insert_ignoring_duplicates(conn, blobs, {"sha256": sha256, "size": len(data), "content": data})
        return
    if _rowid(conn, sha256) is not None:  # stored before, by a document with the same bytes
        return
    # Inside SQLite's one write transaction: nobody can insert the same digest in between.
    rowid = conn.execute(
        sa.insert(blobs).values(sha256=sha256, size=len(data), content=sa.func.zeroblob(len(data)))
    ).lastrowid
    view = memoryview(data)
    with _sqlite(conn).blobopen("blobs", "content", rowid) as blob:
        for start in range(0, len(data), PIECE_BYTES):
            blob.write(view[start : start + PIECE_BYTES])


def blob_pieces(conn: Connection, sha256: str) -> Iterator[bytes]:
    """The stored bytes of ``sha256`` in pieces of at most ``PIECE_BYTES`` (one piece on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        yield bytes(conn.execute(sa.select(blobs.c.content).where(blobs.c.sha256 == sha256)).scalar_one())
        return
    rowid = _rowid(conn, sha256)
    if rowid is None:
        raise LookupError(f"no stored bytes with SHA-256 {sha256}")
    with _sqlite(conn).blobopen("blobs", "content", rowid, readonly=True) as blob:
        while piece := blob.read(PIECE_BYTES):
            yield piece


def _rowid(conn: Connection, sha256: str) -> int | None:
    found: int | None = conn.execute(
        sa.select(sa.literal_column("rowid")).select_from(blobs).where(blobs.c.sha256 == sha256)
    ).scalar_one_or_none()
    return found


def _sqlite(conn: Connection) -> Any:
    """The sqlite3 connection under SQLAlchemy's, in the same transaction."""
    return conn.connection.driver_connection
