"""The audit log read as C2SP ``tlog-tiles`` (https://c2sp.org/tlog-tiles), under ``/v1/audit/tlog/``.

``checkpoint`` and the hash tiles are public, like the proofs of :mod:`gateway.api.audit`: leaf
hashes of salted entries reveal nothing.  Entry bundles hold agency codes and document ids, so they
are for auditors only (the same bearer-token check as the auditor API, and audited like its reads).

Tiles are cut from the tree of the latest *signed* checkpoint, never from entries appended since:
a tile never shows a hash no checkpoint commits to.  Each tile is one range query on the stored
subtree hashes (``audit_nodes``, level 8·L); an entry bundle one on ``audit_entries``.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response
from sqlalchemy.engine import Connection

from gateway.api.auditors import authenticated_auditor, record_read
from gateway.audit.checkpoints import CheckpointLog
from gateway.audit.tiles import MalformedTilePath, Tile, encode_entry_bundle, parse_tile_path, tile_width
from gateway.audit.witnessing import cosigned_note
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.tables import audit_entries, audit_nodes

bp = Blueprint("tiles", __name__)

PREFIX = "/v1/audit/tlog"
IMMUTABLE = "max-age=31536000, immutable"  # a full tile never changes: the log is append-only
SHORT = "max-age=5"  # a partial tile is superseded by a wider one within seconds
OCTETS = "application/octet-stream"


@bp.get(f"{PREFIX}/checkpoint")
def checkpoint() -> Response:
    """The latest signed checkpoint note, with the witnesses' cosignatures (as ``GET /v1/audit/checkpoint``)."""
    svc = services()
    signed = svc.checkpoints.refresh()
    with svc.db.read() as conn:
        note = cosigned_note(conn, signed)
    response = Response(note, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get(f"{PREFIX}/tile/<path:tile_id>")  # tile_id: the path after tile/ (named so for the OpenAPI route check)
def tile(tile_id: str) -> Response:
    entries = tile_id.startswith("entries/")
    auditor = authenticated_auditor() if entries else None  # before anything about the path is said
    try:
        wanted = parse_tile_path(f"tile/{tile_id}")
    except MalformedTilePath as exc:
        raise Refusal("invalid-request", f"{exc} (C2SP tlog-tiles)") from None
    svc = services()
    with svc.db.read() as conn:
        size = _signed_size(conn)
        available = tile_width(size, wanted.level, wanted.index)
        if wanted.width > available:
            what = "entry bundle" if wanted.entries else "tile"
            have = f"{available} of its {wanted.width} wanted" if available else "none"
            raise Refusal(
                "not-found",
                f"the {what} {wanted.path} is beyond the latest signed checkpoint (size {size}): it has {have}",
            )
        body = encode_entry_bundle(_entries(conn, wanted)) if wanted.entries else b"".join(_hashes(conn, wanted))
    if auditor is not None:
        record_read(auditor, "auditor.export", f"tlog {wanted.path}")
    response = Response(body, mimetype=OCTETS)
    # Entry bundles are the auditor's alone (the app's header policy may make them no-store: stricter still).
    response.headers["Cache-Control"] = f"{'private' if entries else 'public'}, {IMMUTABLE if wanted.full else SHORT}"
    return response


def _signed_size(conn: Connection) -> int:
    latest = CheckpointLog.latest(conn)
    return latest.size if latest is not None else 0


def _hashes(conn: Connection, tile: Tile) -> list[bytes]:
    """The tile's hashes: the stored subtrees of height 8·L, indices first … first + width - 1, in one query."""
    rows = conn.execute(
        sa.select(audit_nodes.c.hash)
        .where(
            audit_nodes.c.level == tile.node_height,
            audit_nodes.c.idx >= tile.first,
            audit_nodes.c.idx < tile.first + tile.width,
        )
        .order_by(audit_nodes.c.idx)
    ).scalars()
    found = [bytes(h) for h in rows]
    if len(found) != tile.width:
        raise LookupError(f"audit subtrees of {tile.path} are missing: the stored log is damaged")
    return found


def _entries(conn: Connection, tile: Tile) -> list[bytes]:
    rows = conn.execute(
        sa.select(audit_entries.c.body)
        .where(audit_entries.c.idx >= tile.first, audit_entries.c.idx < tile.first + tile.width)
        .order_by(audit_entries.c.idx)
    ).scalars()
    found = [bytes(b) for b in rows]
    if len(found) != tile.width:
        raise LookupError(f"audit entries of {tile.path} are missing: the stored log is damaged")
    return found
