"""The newest checkpoint this gateway ever signed, kept outside the database.

Checkpoints are published: auditors, receipts and evidence packages hold them.  If the database is
restored from a backup older than the newest of them, the log in it is shorter, and the next
checkpoint would commit to a different history than one the world already holds — a fork that
verifiers could not tell from tampering.  So each signed checkpoint is also written here (in
``keys/``, which is backed up and restored apart from the database), and :class:`CheckpointLog`
refuses to sign unless the stored log extends it (issue 10: backup and restore).

Writers only move it forward (size grows) under a file lock, so several processes and hosts
sharing ``keys/`` cannot move it back.

Verifiers know a log by its origin and checkpoint key, so any history signed under this origin
must extend what was published under it — a restored backup, a rewritten database or a fresh one
started with the same ``keys/`` alike: there is one record per origin.  Demo mode (a development
machine, a test suite) keeps one record per log instead, named after the hash of the log's first
entry, so a fresh demo database is a new log and is not held to the last one.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Published:
    size: int
    root: bytes
    note: str


class PublishedCheckpoint:
    def __init__(self, folder: Path, origin: str, *, per_log: bool = False) -> None:
        self.folder = folder
        self._origin = hashlib.sha256(origin.encode()).hexdigest()[:32]
        self._per_log = per_log

    def path(self, log_id: bytes) -> Path:
        """``log_id`` (the log's first leaf hash) names the record only in demo mode."""
        return self.folder / (f"log-{log_id.hex()[:32]}.json" if self._per_log else f"origin-{self._origin}.json")

    def read(self, log_id: bytes) -> Published | None:
        path = self.path(log_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Published(int(data["size"]), base64.b64decode(data["root"], validate=True), str(data["note"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"{path} is damaged ({exc}); restore it from the keys/ backup") from None

    def advance(self, log_id: bytes, size: int, root: bytes, note: str) -> None:
        """Record a newly signed checkpoint if it is newer than the one recorded."""
        path = self.path(log_id)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read(log_id)
            if current is not None and current.size >= size:
                return
            temporary = path.with_name(f".{path.name}.{os.getpid()}")
            temporary.write_text(
                json.dumps({"size": size, "root": base64.b64encode(root).decode(), "note": note}), encoding="utf-8"
            )
            os.replace(temporary, path)

    def forget(self, log_id: bytes) -> Published | None:
        """For an operator who decides to accept a restore that lost entries (``gateway audit accept-restore``)."""
        found = self.read(log_id)
        if found is not None:
            path = self.path(log_id)
            os.replace(path, path.with_suffix(f".superseded-{found.size}"))
        return found
