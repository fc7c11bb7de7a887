"""Sending each new checkpoint to the configured witnesses and keeping their cosignatures (issue 13).

A witness is asked with C2SP tlog-witness ``add-checkpoint``: the size it last cosigned for us, the
consistency proof from there, and the newest checkpoint.  It answers with its cosignature, or 409 and
the size it actually holds (we were wrong about it: ask again from there), or a refusal.  A witness
that is down is simply behind; it is caught up from its last size when it answers again.  A witness
that has cosigned *more* than this log now holds is the one thing that must not happen to an honest
log: the database was rolled back, and that is said loudly.

Only one process sends at a time (``Database.exclusive``): several would only make each other's
requests stale.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.checkpoint import split_note
from gateway.audit.checkpoints import CheckpointLog, SignedCheckpoint
from gateway.policy import Refusal
from gateway.store.db import Database
from gateway.store.helpers import insert_ignoring_duplicates
from gateway.store.tables import audit_cosignatures, audit_witnesses
from gateway.witness.cosignature import CosignatureVerifier

log = logging.getLogger("gateway.audit")

# (url, body) → (status, body): the one HTTP call, replaceable in tests by a real in-process witness.
Post = Callable[[str, bytes], tuple[int, str]]


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the gateway sends to: its verifier key and its submission prefix."""

    verifier: CosignatureVerifier
    url: str

    @property
    def name(self) -> str:
        return self.verifier.name

    @classmethod
    def parse(cls, entry: str) -> WitnessEndpoint:
        """``<vkey> <submission prefix URL>``, as ``GATEWAY_WITNESSES`` lists them."""
        parts = entry.split()
        if len(parts) != 2 or not parts[1].startswith(("http://", "https://")):
            raise Refusal("witness-invalid", "a witness reads '<witness vkey> <http(s)://… submission prefix>'")
        return cls(CosignatureVerifier.parse(parts[0]), parts[1].rstrip("/"))


@dataclass(frozen=True)
class WitnessStatus:
    name: str
    size: int
    lag: int  # checkpoints' entries not yet cosigned by it
    problem: str | None


class WitnessUnreachable(Exception):
    """No answer (refused, timed out, name unknown): an expected state, caught up later, never a traceback."""


def http_post(timeout: float = 5.0) -> Post:
    def post(url: str, body: bytes) -> tuple[int, str]:
        try:
            answer = requests.post(url, data=body, timeout=timeout, headers={"Content-Type": "text/plain"})
        except requests.RequestException as exc:
            reason = exc.__context__ or exc.__cause__ or exc
            raise WitnessUnreachable(f"{type(exc).__name__} ({_short(reason)})") from None
        return answer.status_code, answer.text[:4096]

    return post


def _short(reason: BaseException) -> str:
    text = str(reason)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return text[:120]


class WitnessPublisher:
    def __init__(
        self,
        db: Database,
        checkpoints: CheckpointLog,
        witnesses: Sequence[WitnessEndpoint],
        post: Post | None = None,
    ) -> None:
        self._db = db
        self._checkpoints = checkpoints
        self.witnesses = tuple(witnesses)
        self._post = post or http_post()
        self._said: dict[str, str] = {}  # the problem last logged per witness

    def publish(self) -> bool:
        """Bring every witness up to the newest checkpoint, if no other process is doing it right now;
        False when another was (it may have started before the newest checkpoint was signed)."""
        if not self.witnesses:
            return True
        with self._db.exclusive("witnesses") as mine:
            if not mine:
                return False
            with self._db.read() as conn:
                latest = CheckpointLog.latest(conn)
            if latest is None or latest.size == 0:
                return True
            for witness in self.witnesses:
                try:
                    self._catch_up(witness, latest)
                except WitnessUnreachable as exc:
                    self._record(witness, None, f"unreachable at {witness.url}: {exc}; retried every second")
                except Exception as exc:  # one witness's trouble never stops the others or the tick
                    log.exception("sending checkpoint %d to witness %s failed", latest.size, witness.name)
                    self._record(witness, None, f"{type(exc).__name__}: {exc}"[:500])
        return True

    def cosign_now(self, timeout: float = 5.0) -> None:
        """Before a receipt, an export or an evidence package is handed out: its checkpoint goes to the
        witnesses first, so what is handed out carries their cosignatures and meets a policy's quorum.

        One pass of this process's own (waiting, up to ``timeout``, while another process finishes
        its pass); a witness that is down costs its connection timeout, not a wait for it to return."""
        deadline = time.monotonic() + timeout
        while self.witnesses:
            try:
                if self.publish() or time.monotonic() >= deadline:
                    return
            except Exception:
                log.exception("sending checkpoints to witnesses failed")
                return
            time.sleep(0.05)

    def publish_quietly(self) -> None:
        try:
            self.publish()
        except Exception:
            log.exception("sending checkpoints to witnesses failed")

    def status(self, conn: Connection) -> list[WitnessStatus]:
        latest = CheckpointLog.latest(conn)
        size = latest.size if latest is not None else 0
        rows = {r.name: r for r in conn.execute(sa.select(audit_witnesses))}
        found = []
        for witness in self.witnesses:
            row = rows.get(witness.name)
            cosigned = int(row.size) if row is not None else 0
            problem = row.problem if row is not None else "not contacted yet"
            found.append(WitnessStatus(witness.name, cosigned, max(size - cosigned, 0), problem))
        return found

    def _catch_up(self, witness: WitnessEndpoint, latest: SignedCheckpoint) -> None:
        with self._db.read() as conn:
            known = conn.execute(
                sa.select(audit_witnesses.c.size).where(audit_witnesses.c.name == witness.name)
            ).scalar_one_or_none()
            done = conn.execute(
                sa.select(audit_cosignatures.c.size).where(
                    audit_cosignatures.c.size == latest.size, audit_cosignatures.c.witness == witness.name
                )
            ).scalar_one_or_none()
        old = int(known or 0)
        if done is not None and old == latest.size:
            return
        for _attempt in range(2):  # a 409 tells the witness's real size: one more try from there
            if old > latest.size:
                self._rolled_back(witness, old, latest.size)
                return
            status, text = self._post(f"{witness.url}/add-checkpoint", self._request(old, latest))
            if status == 200:
                self._keep(witness, latest, text)
                return
            if status == 409 and text.strip().isdigit():
                old = int(text.strip())
                continue
            self._record(witness, None, f"answered {status}: {text.strip()[:300]}")
            return
        self._record(witness, old, f"still behind after a retry from size {old}")

    def _request(self, old: int, latest: SignedCheckpoint) -> bytes:
        proof: list[bytes] = []
        if 0 < old < latest.size:
            with self._db.read() as conn:
                proof = self._checkpoints.consistency(conn, old, latest.size)
        lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
        return f"old {old}\n{lines}\n{latest.note}".encode()

    def _keep(self, witness: WitnessEndpoint, latest: SignedCheckpoint, answer: str) -> None:
        body, _ = split_note(latest.note)
        valid = []
        for line in answer.splitlines():
            try:
                stamp = witness.verifier.timestamp(body, line)
            except Refusal as refusal:
                self._record(witness, None, f"its cosignature does not verify: {refusal.reason}")
                return
            if stamp is not None:
                valid.append((line, stamp))
        if not valid:
            names = sorted({line[2:].split(" ", 1)[0] for line in answer.splitlines() if line.startswith("\u2014 ")})
            signs_as = f"it signs as {', '.join(names)}" if names else "its answer holds no signature line"
            self._record(
                witness,
                None,
                f"the witness at {witness.url} answered 200 without a cosignature by {witness.verifier.vkey[:60]}…: "
                f"{signs_as}; check the key given for this URL in GATEWAY_WITNESSES",
            )
            return
        with self._db.write() as conn:
            for line, stamp in valid[:1]:
                insert_ignoring_duplicates(
                    conn,
                    audit_cosignatures,
                    {"size": latest.size, "witness": witness.name, "line": line, "cosigned_at": stamp},
                )
            self._store(conn, witness, latest.size, None)
        if self._said.pop(witness.name, None) is not None:
            log.info("witness %s cosigns again (size %d)", witness.name, latest.size)

    def _rolled_back(self, witness: WitnessEndpoint, cosigned: int, size: int) -> None:
        problem = (
            f"the witness has cosigned size {cosigned} of this log, which now holds {size}: the database was "
            "rolled back or rewritten; restore the newest backup (the witness will not cosign a smaller tree)"
        )
        if self._said.get(witness.name) != problem:
            log.critical("witness %s: %s", witness.name, problem)
            self._said[witness.name] = problem
        self._record(witness, cosigned, problem)

    def _record(self, witness: WitnessEndpoint, size: int | None, problem: str) -> None:
        if self._said.get(witness.name) != problem:  # said once when it starts, not every second
            log.warning("witness %s: %s", witness.name, problem)
        self._said[witness.name] = problem
        with self._db.write() as conn:
            self._store(conn, witness, size, problem)

    @staticmethod
    def _store(conn: Connection, witness: WitnessEndpoint, size: int | None, problem: str | None) -> None:
        now = int(time.time() * 1_000_000)
        changed = conn.execute(
            sa.update(audit_witnesses)
            .where(audit_witnesses.c.name == witness.name)
            .values(
                attempted_us=now,
                problem=problem,
                **({"size": size} if size is not None else {}),
            )
        ).rowcount
        if not changed:
            conn.execute(
                sa.insert(audit_witnesses).values(name=witness.name, size=size or 0, attempted_us=now, problem=problem)
            )


def cosignature_lines(conn: Connection, size: int) -> list[str]:
    """The stored witnesses' cosignature lines on the checkpoint of ``size``, in a stable order."""
    return [
        str(line)
        for line in conn.execute(
            sa.select(audit_cosignatures.c.line)
            .where(audit_cosignatures.c.size == size)
            .order_by(audit_cosignatures.c.witness)
        ).scalars()
    ]


def cosigned_note(conn: Connection, checkpoint: SignedCheckpoint) -> str:
    """The checkpoint's note with the witnesses' cosignatures stored for it: what receipts, bundles and
    ``GET /v1/audit/checkpoint`` hand out, so a verifier can require a quorum (C2SP tlog-policy)."""
    return checkpoint.note + "".join(line + "\n" for line in cosignature_lines(conn, checkpoint.size))
