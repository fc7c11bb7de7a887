"""Files that must hold the old content or the new, whole, after a crash: the signer's record of what
it signed, a monitor's last verified checkpoint, the published verifier keys."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_durably(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Written beside ``path`` under a unique name (so writers never share a temporary file), with
    ``mode`` (owner-only unless said: keys are written this way too), flushed, renamed over it, and
    the rename flushed with the folder (POSIX; a platform that cannot open folders keeps it unflushed)."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
