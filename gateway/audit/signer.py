"""The one process that holds the checkpoint key: it signs, records what it signed, and tells the witnesses.

Before issue 13 every web worker loaded the checkpoint key and signed in its once-a-second tick, so
a flaw in any request handler was a flaw next to the key.  ``gateway serve`` now runs web and
delivery workers without it (``GATEWAY_SIGNS_CHECKPOINTS=false``) and one ``gateway audit signer``
that runs :class:`CheckpointSigner`: it looks for new entries a few times a second, signs at most
once per interval, keeps its record of the last signed checkpoint beside its key
(gateway.audit.published), publishes its verifier keys for the others (gateway.keyring.write_vkeys)
and sends each new checkpoint to the witnesses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.audit.checkpoints import CheckpointLog, SignedCheckpoint

log = logging.getLogger("gateway.audit")

POLL_SECONDS = 0.1  # how soon a receipt waiting for a checkpoint is served, at the cost of two reads
WITNESS_RETRY_SECONDS = 1.0  # a witness that was down is tried again this often


class CheckpointSigner:
    def __init__(self, services: Any, *, poll_seconds: float = POLL_SECONDS) -> None:
        if not services.checkpoints.signs:
            raise ValueError("this process has no checkpoint key: GATEWAY_SIGNS_CHECKPOINTS is false")
        self._svc = services
        self._poll = poll_seconds
        self.signed = 0

    def tick(self) -> SignedCheckpoint | None:
        """One look: sign if the log grew (at most once per interval); None when nothing new was signed."""
        svc = self._svc
        svc.ring.refresh()  # a rotation: the new key signs, and the public verifier keys are rewritten
        before = self._latest()
        svc.checkpoints.refresh_quietly()
        latest = self._latest()
        if latest is None or (before is not None and latest.size == before.size):
            return None
        self.signed += 1
        return latest

    def run(self, stop: threading.Event, report: Callable[[SignedCheckpoint], None] = lambda _c: None) -> None:
        last_publish = 0.0
        while not stop.is_set():
            signed = self.tick()
            if signed is not None:
                report(signed)
            if signed is not None or time.monotonic() - last_publish >= WITNESS_RETRY_SECONDS:
                self._svc.witnesses.publish_quietly()
                last_publish = time.monotonic()
            stop.wait(self._poll)

    def _latest(self) -> SignedCheckpoint | None:
        with self._svc.db.read() as conn:
            return CheckpointLog.latest(conn)
