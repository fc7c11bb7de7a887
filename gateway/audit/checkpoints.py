"""Signing checkpoints of the audit log and serving proofs against them.

A checkpoint is signed at most once a second, whenever the log has grown (after write requests and
whenever one is asked for).  Before signing size n the service proves, from the stored subtree
hashes, that the tree of size n extends the last signed checkpoint; if it does not, the stored log
was altered and it refuses to sign — the gateway never signs two inconsistent checkpoints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, sign_note
from gateway.audit.log import StoredTree
from gateway.audit.merkle import consistency_path, inclusion_path, root_hash, verify_consistency
from gateway.audit.published import PublishedCheckpoint
from gateway.policy import Refusal
from gateway.store.db import Database
from gateway.store.tables import audit_checkpoints, audit_head

if TYPE_CHECKING:
    from gateway.keyring import KeyRing

log = logging.getLogger("gateway.audit")


@dataclass(frozen=True)
class _Signers:
    checkpoint_signers: tuple[NoteSigner, ...]
    checkpoint_verifiers: tuple[NoteVerifier, ...]
    checkpoint_vkeys: tuple[str, ...]


class FixedSigner:
    """One key that never rotates (benchmarks, tools): the same shape as :class:`gateway.keyring.KeyRing`."""

    def __init__(self, signer: NoteSigner) -> None:
        self.snapshot = _Signers((signer,), (signer.verifier,), (signer.vkey,))
        self.origin = signer.name


class SignerAway(Refusal):
    """This process does not sign, and the signer has not signed what was asked for in time."""

    def __init__(self, reason: str) -> None:
        super().__init__("checkpoint-pending", reason)


class LogInconsistent(Exception):
    """The stored log does not extend the last signed checkpoint: someone altered it."""


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str
    created_us: int


class CheckpointLog:
    """Signs with the ring's checkpoint signers: the current key, and during a rotation the other one too,
    so a verifier holding either verifier key keeps verifying new checkpoints."""

    def __init__(
        self,
        db: Database,
        ring: KeyRing | FixedSigner,
        *,
        interval: float = 1.0,
        published: PublishedCheckpoint | None = None,
        signer_wait_seconds: float = 5.0,
    ) -> None:
        self._db = db
        self._ring = ring
        self._interval_us = int(interval * 1_000_000)
        self._signer_wait = signer_wait_seconds
        self._published = published
        self._last_warned = -60.0

    @property
    def published(self) -> PublishedCheckpoint | None:
        return self._published

    @property
    def _signers(self) -> tuple[NoteSigner, ...]:
        return self._ring.snapshot.checkpoint_signers

    @property
    def signs(self) -> bool:
        """Whether this process holds the checkpoint key; otherwise `gateway audit signer` signs."""
        return bool(self._signers)

    @property
    def vkey(self) -> str:
        """The current verifier key ("" in a process that does not sign, until the signer published it)."""
        vkeys = self.vkeys
        return vkeys[0] if vkeys else ""

    @property
    def vkeys(self) -> list[str]:
        """Every verifier key of this log, current first: the ones signing now, then retired ones."""
        return list(self._ring.snapshot.checkpoint_vkeys)

    @property
    def origin(self) -> str:
        return self._ring.origin

    @staticmethod
    def latest(conn: Connection) -> SignedCheckpoint | None:
        row = conn.execute(
            sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc()).limit(1)
        ).one_or_none()
        return SignedCheckpoint(int(row.size), bytes(row.root), row.note, int(row.created_us)) if row else None

    def refresh(self, *, force: bool = False) -> SignedCheckpoint:
        """The latest checkpoint, signing a new one first when the log grew and the last is older than the interval."""
        now = int(time.time() * 1_000_000)
        with self._db.read() as conn:
            size = _head_size(conn)
            latest = self.latest(conn)
        if latest is not None and (latest.size == size or (not force and now - latest.created_us < self._interval_us)):
            return latest
        if not self.signs:
            return self._signed_elsewhere(size, wait=force or latest is None)
        with self._db.write() as conn:
            conn.execute(sa.update(audit_head).where(audit_head.c.id == 1).values(size=audit_head.c.size))  # lock
            size, latest = _head_size(conn), self.latest(conn)
            if latest is not None and latest.size == size:
                return latest
            if latest is not None and not latest.note.startswith(self.origin + "\n"):
                # This process names the log otherwise than its checkpoints do (it started while the
                # database was away and the public URL had changed): signing would split the log in two.
                raise LogInconsistent(
                    f"the log's checkpoints are named {latest.note.split(chr(10), 1)[0]!r} but this process would "
                    f"sign as {self.origin!r}: restart it with the database reachable"
                )
            previous = latest.size if latest is not None else 0
            tree = StoredTree(conn).prefetch(
                lambda t: (root_hash(t, size), consistency_path(t, previous, size) if previous else None)
            )
            root = root_hash(tree, size)
            self._check_published(conn, tree, size, root)
            if latest is not None and latest.size > 0:
                proof = consistency_path(tree, latest.size, size)
                if not verify_consistency(latest.size, size, latest.root, root, proof):
                    log.critical("audit log no longer extends checkpoint %d: refusing to sign", latest.size)
                    raise LogInconsistent(f"the stored log does not extend the checkpoint of size {latest.size}")
            note = sign_note(Checkpoint(self.origin, size, root).text(), self._signers)
            signed = SignedCheckpoint(size, root, note, int(time.time() * 1_000_000))
            if self._published is not None and size > 0:
                # Recorded before anyone can see it: the entries it covers are committed already, so a
                # failed insert below leaves a record the stored log still extends.
                self._published.advance(size, root, note)
            conn.execute(
                sa.insert(audit_checkpoints).values(size=size, root=root, note=note, created_us=signed.created_us)
            )
        return signed

    def _signed_elsewhere(self, size: int, *, wait: bool) -> SignedCheckpoint:
        """In a process without the key: the signer's latest checkpoint, waiting (bounded) for one of
        ``size`` entries when the caller needs everything written so far covered."""
        deadline = time.monotonic() + self._signer_wait
        while True:
            with self._db.read() as conn:
                latest = self.latest(conn)
            if latest is not None and (latest.size >= size or not wait):
                return latest
            if time.monotonic() >= deadline:
                raise SignerAway(
                    f"no checkpoint covering the log's {size} entries was signed within {self._signer_wait:g} s: "
                    "the checkpoint signer (`gateway audit signer`, started by `gateway serve`) is not running "
                    "or cannot sign; retry shortly"
                )
            time.sleep(0.05)

    def signer_lag(self) -> dict[str, Any]:
        """For /readyz: entries not yet under a checkpoint, and for how long (a stopped signer shows here)."""
        with self._db.read() as conn:
            size, latest = _head_size(conn), self.latest(conn)
        unsigned = size - (latest.size if latest is not None else 0)
        behind = time.time() - latest.created_us / 1e6 if latest is not None and unsigned else 0.0
        found: dict[str, Any] = {
            "signs_here": self.signs,
            "unsigned_entries": unsigned,
            "seconds_behind": round(behind),
        }
        if unsigned and behind > 10 * self._interval_us / 1e6 + 5:
            found["problem"] = (
                f"{unsigned} entries unsigned for {behind:.0f} s: is the checkpoint signer (`gateway audit signer`) "
                "running and able to sign?"
            )
        return found

    def published_problem(self) -> str | None:
        """Why no checkpoint can be signed (for /readyz), or None."""
        if self._published is None:
            return None
        try:
            with self._db.read() as conn:
                size = _head_size(conn)
                if size == 0:
                    return None
                found = self._published.read()
                if found is None or self._stores(conn, found.size, found.root):
                    # The published checkpoint is one of this database's own: signing goes on from it
                    # (and checks each new checkpoint against the latest stored), so /readyz stays cheap.
                    return None
                tree = StoredTree(conn).prefetch(lambda t: root_hash(t, size))
                self._check_published(conn, tree, size, root_hash(tree, size))
        except (LogInconsistent, ValueError, LookupError) as exc:
            return str(exc)
        return None

    @staticmethod
    def _stores(conn: Connection, size: int, root: bytes) -> bool:
        stored = conn.execute(sa.select(audit_checkpoints.c.root).where(audit_checkpoints.c.size == size)).scalar()
        return stored is not None and bytes(stored) == root

    def _check_published(self, conn: Connection, tree: StoredTree, size: int, root: bytes) -> None:
        if self._published is None or size == 0:
            return
        found = self._published.read()
        if found is None:
            others = self._published.other_logs()
            if others:
                raise LogInconsistent(
                    f"this checkpoint key last signed for the log {others[0]!r}, not {self.origin!r}: the log's "
                    "name in the database was changed, or the keys belong to another deployment"
                )
            return
        if size < found.size:
            raise LogInconsistent(
                f"the stored log has {size} entries but this gateway already published a checkpoint of size "
                f"{found.size}: the database was restored from an older backup, or it holds another log. Restore "
                'a newer backup, or run `gateway audit accept-restore --reason "…"` to accept the loss '
                "(published checkpoints will not verify against it)"
            )
        if size > found.size and found.size > 0:
            proof = consistency_path(tree, found.size, size)
            if not verify_consistency(found.size, size, found.root, root, proof):
                raise LogInconsistent(f"the stored log does not extend the published checkpoint of size {found.size}")
        elif size == found.size and root != found.root:
            raise LogInconsistent(f"the stored log differs from the published checkpoint of size {found.size}")

    def refresh_quietly(self) -> None:
        """For after-request hooks: a failure to sign is logged, never turned into the caller's error."""
        try:
            self.refresh()
        except LogInconsistent as exc:  # stays so until an operator acts: said once a minute, not every second
            if time.monotonic() - self._last_warned >= 60:
                self._last_warned = time.monotonic()
                log.critical("not signing audit checkpoints: %s", exc)
        except Exception:
            log.exception("could not sign an audit checkpoint")

    def inclusion(self, conn: Connection, index: int, size: int) -> list[bytes]:
        self._check_size(conn, size)
        if not 0 <= index < size:
            raise Refusal("invalid-request", f"index must be between 0 and size - 1 ({size - 1})")
        tree = StoredTree(conn).prefetch(lambda t: inclusion_path(t, index, size))
        return inclusion_path(tree, index, size)

    def consistency(self, conn: Connection, first: int, second: int) -> list[bytes]:
        self._check_size(conn, second)
        if not 0 <= first <= second:
            raise Refusal("invalid-request", "from must be between 0 and to")
        tree = StoredTree(conn).prefetch(lambda t: consistency_path(t, first, second))
        return consistency_path(tree, first, second)

    @staticmethod
    def _check_size(conn: Connection, size: int) -> None:
        current = _head_size(conn)
        if not 0 < size <= current:
            raise Refusal("invalid-request", f"size must be between 1 and the log's size ({current})")


def _head_size(conn: Connection) -> int:
    return int(conn.execute(sa.select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())
