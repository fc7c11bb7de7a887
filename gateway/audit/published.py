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
started with the same keys alike: there is one record per origin, and nothing in the database can
make the signer start a new one (issue 13: a demo's record used to be named after the log's first
entry, so emptying the tables and writing a new history started a new record).  Only an operator
with the keys folder can set a record aside: ``gateway audit accept-restore``, or ``gateway init
--demo`` creating a new demo database.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.store.durable import write_durably


@dataclass(frozen=True)
class Published:
    size: int
    root: bytes
    note: str


class PublishedCheckpoint:
    def __init__(self, folder: Path, origin: str) -> None:
        self.folder = folder
        self.path = folder / f"origin-{hashlib.sha256(origin.encode()).hexdigest()[:32]}.json"

    def read(self) -> Published | None:
        return _read(self.path)

    def other_logs(self) -> list[str]:
        """The origins of other logs recorded here.  Checkpoints stored in the database name the origin, so
        a rewritten database could rename the log and get a fresh record; the signer refuses instead."""
        found = []
        for path in self._records():
            if path != self.path:
                try:
                    record = _read(path)
                    found.append(record.note.split("\n", 1)[0] if record else path.name)
                except ValueError:
                    found.append(path.name)
        return found

    def advance(self, size: int, root: bytes, note: str) -> None:
        """Record a newly signed checkpoint if it is newer than the one recorded."""
        path = self.path
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read()
            if current is not None and current.size >= size:
                return
            record = json.dumps({"size": size, "root": base64.b64encode(root).decode(), "note": note}).encode()
            write_durably(path, record)

    def forget(self) -> Published | None:
        """For an operator who decides to accept a restore that lost entries (``gateway audit accept-restore``)."""
        return _set_aside(self.path)

    def set_aside_all(self) -> list[Published]:
        """Every record here kept aside: ``gateway init --demo`` creating a new demo database."""
        return [found for path in self._records() if (found := _set_aside(path)) is not None]

    def _records(self) -> list[Path]:
        return sorted(self.folder.glob("origin-*.json")) if self.folder.is_dir() else []


def _read(path: Path) -> Published | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Published(int(data["size"]), base64.b64decode(data["root"], validate=True), str(data["note"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"{path} is damaged ({exc}); restore it from the keys/ backup") from None


def _set_aside(path: Path) -> Published | None:
    """The record renamed, never deleted: what was published stays on file for whoever asks."""
    found = _read(path)
    if found is not None:
        os.replace(path, path.with_suffix(f".superseded-{found.size}-{int(time.time())}"))
    return found
