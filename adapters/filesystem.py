"""Drop delivery into a folder: legacy document systems and SFTP mounts.

Each delivery is two files named after the gateway's document id: ``<id>.seal.xml`` first, then
``<id>.edxml``, each written under a temporary name beginning with ``.``, fsynced and renamed into
place, and the folder fsynced, so a reader never sees a partial file and a document file always has
its seal beside it.  The agency's system takes the pair and moves it into the ``done`` folder; that
move is the receipt.  Redelivery writes nothing when either folder already holds the document, and
removes the temporary files a writer killed mid-write left behind.

The receiving agency can write its drop folder, so everything here assumes it may plant links: the
folder is opened once with ``O_DIRECTORY | O_NOFOLLOW`` and every operation is relative to that
descriptor; temporary names are random and created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a link
or file already there makes the create fail rather than be followed); the result must be a regular
file, mode 0640 (dossiers carry personal data); rename and unlink act on names, never through links.
Run the worker as a user that cannot write the database or the keys (README, "Delivery").
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, Deployment, SettingSpec


class FilesystemAdapter(Adapter):
    name = "filesystem"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "folder": SettingSpec(str, required=True),
        "done_folder": SettingSpec(str),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], deployment: Deployment) -> None:
        for key in ("folder", "done_folder"):
            if key in settings and not Path(str(settings[key])).is_absolute():
                raise AdapterSettingsError(f"adapter 'filesystem': {key} must be an absolute path")

    @property
    def folder(self) -> Path:
        return Path(str(self.settings["folder"]))

    @property
    def done_folder(self) -> Path:
        return Path(str(self.settings.get("done_folder") or self.folder / "done"))

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        name = delivery.document_uuid
        if _exists(self.done_folder, f"{name}.edxml"):
            return self.check_receipt(delivery)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with _open_folder(self.folder) as folder:
                if _present(folder, f"{name}.edxml"):
                    return DeliveryResult("awaiting-receipt", f"already in {self.folder}")
                for leftover in os.listdir(folder):  # temporary files of a writer that died mid-write
                    if leftover.startswith(f".{name}.") and leftover.endswith(".tmp"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(leftover, dir_fd=folder)
                _atomic_write(folder, f"{name}.seal.xml", delivery.seal)
                _atomic_write(folder, f"{name}.edxml", delivery.content)
        except UnsafeFolder as exc:
            return DeliveryResult("permanent", str(exc))
        except OSError as exc:  # a full disk or an unmounted share comes back
            return DeliveryResult("retryable", f"cannot write to {self.folder}: {exc.strerror or exc}")
        return DeliveryResult("awaiting-receipt", f"dropped into {self.folder}")

    def check_receipt(self, delivery: Delivery) -> DeliveryResult:
        done = self.done_folder / f"{delivery.document_uuid}.edxml"
        try:
            moved = done.stat().st_mtime
        except FileNotFoundError:
            return DeliveryResult("awaiting-receipt", f"not yet in {self.done_folder}")
        except OSError as exc:
            return DeliveryResult("awaiting-receipt", f"cannot look into {self.done_folder}: {exc.strerror or exc}")
        receipt = json.dumps({"document_id": delivery.document_uuid, "done": str(done), "moved_at": moved})
        return DeliveryResult("delivered", f"moved to {self.done_folder}", receipt=receipt.encode())

    def healthy(self) -> tuple[bool, str]:
        if not self.folder.is_dir():
            return False, f"{self.folder} is not a folder"
        if not os.access(self.folder, os.W_OK):
            return False, f"{self.folder} is not writable"
        return True, f"{self.folder} is writable"


class UnsafeFolder(OSError):
    """The drop folder, or something in it, is not what a delivery may write through."""


@contextlib.contextmanager
def _open_folder(path: Path) -> Iterator[int]:
    try:
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (40, 20):  # ELOOP (a link), ENOTDIR
            raise UnsafeFolder(
                f"{path} is a link or not a folder: the gateway writes only into a real folder"
            ) from None
        raise
    try:
        yield folder
    finally:
        os.close(folder)


def _present(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _exists(path: Path, name: str) -> bool:
    try:
        os.lstat(path / name)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _atomic_write(folder: int, name: str, data: bytes) -> None:
    """Write ``name`` in the open ``folder`` so that a reader sees all of it or nothing, and so that no
    link planted in the folder is ever followed."""
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o640, dir_fd=folder)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnsafeFolder(f"{temporary} is not a regular file")
        os.fchmod(descriptor, 0o640)  # whatever the umask: owner writes, the agency's group reads
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        os.close(descriptor)
    os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)  # replaces a planted link, never follows it
    os.fsync(folder)
