"""Drop delivery into a folder: legacy document systems and SFTP mounts.

Each delivery is two files named after the gateway's document id: ``<id>.seal.xml`` first, then
``<id>.edxml``, each written under a temporary name beginning with ``.``, fsynced and renamed into
place, and the folder fsynced, so a reader never sees a partial file and a document file always has
its seal beside it.  The agency's system takes the pair and moves it into the ``done`` folder; that
move is the receipt.  Redelivery writes nothing when either folder already holds the document, and
removes the temporary files a writer killed mid-write left behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, SettingSpec


class FilesystemAdapter(Adapter):
    name = "filesystem"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "folder": SettingSpec(str, required=True),
        "done_folder": SettingSpec(str),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
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
        if (self.done_folder / f"{name}.edxml").exists():
            return self.check_receipt(delivery)
        if (self.folder / f"{name}.edxml").exists():
            return DeliveryResult("awaiting-receipt", f"already in {self.folder}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for leftover in self.folder.glob(f".{name}.*.tmp"):  # a writer that died mid-write
                leftover.unlink(missing_ok=True)
            _atomic_write(self.folder, f"{name}.seal.xml", delivery.seal)
            _atomic_write(self.folder, f"{name}.edxml", delivery.content)
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


def _atomic_write(folder: Path, name: str, data: bytes) -> None:
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / name)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
