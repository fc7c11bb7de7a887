"""``add-checkpoint`` (C2SP tlog-witness): the checks, in the spec's order, and the answer.

Each refusal has the spec's status code — 400 a malformed request or an old size above the new,
403 no valid signature by a key trusted for the origin, 404 an origin this witness does not watch,
409 an old size that is not the one last cosigned (the body says which is), 422 a proof that does not
verify — and is kept, with the request, when the checkpoint was validly signed: it may prove that the
log misbehaved.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.audit.checkpoint import MAX_TREE_SIZE, AnyOfVerifiers, Checkpoint, NoteVerifier, split_note
from gateway.audit.merkle import verify_consistency
from gateway.policy import Refusal
from gateway.witness.cosignature import CosignatureSigner
from gateway.witness.state import Cosigned, WitnessState

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
EMPTY_ROOT = hashlib.sha256(b"").digest()
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class _Refused(Exception):
    def __init__(self, status: int, reason: str, *, body: str | None = None, content_type: str | None = None) -> None:
        super().__init__(reason)
        self.answer = Answer(
            status, body if body is not None else reason + "\n", content_type or "text/plain; charset=utf-8"
        )


@dataclass(frozen=True)
class _Request:
    old: int
    proof: list[bytes]
    note: str


class Witness:
    """Cosigns checkpoints of the logs it watches (origin → the log's verifier keys), never two that
    disagree and never one smaller than the last."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, AnyOfVerifiers | NoteVerifier],
        state: WitnessState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not logs:
            raise ValueError("a witness watches at least one log")  # watching none would cosign nothing, silently
        self.signer = signer
        self.logs = dict(logs)
        self.state = state
        self._clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        request: _Request | None = None
        checkpoint: Checkpoint | None = None
        try:
            request = _parse(body)
            checkpoint, text = self._open(request.note)
            if request.old > checkpoint.size:
                raise _Refused(400, f"old size {request.old} is above the checkpoint's size {checkpoint.size}")
            stored = self.state.advance(
                checkpoint.origin, lambda current: self._decide(request, checkpoint, text, current)
            )
            assert stored is not None
            return Answer(200, stored.cosignature)
        except _Refused as refused:
            # Evidence is what only a misbehaving log can produce: a checkpoint it signed that does not
            # agree with what this witness cosigned (422).  Replays of a public checkpoint with a wrong
            # old size (409) are anyone's to send, so they are not kept (review: they evicted evidence).
            if checkpoint is not None and request is not None and refused.answer.status == 422:
                self.state.record_refusal(
                    checkpoint.origin, refused.answer.status, str(refused), _as_signed_by_log(request.note)
                )
            return refused.answer

    def checkpoint(self, origin_hash: str) -> Answer:
        """The newest cosigned checkpoint of the log whose origin hashes to ``origin_hash`` (monitoring)."""
        for origin in self.logs:
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                found = self.state.latest(origin)
                if found is not None:
                    return Answer(200, found.checkpoint + found.cosignature, "text/plain; charset=utf-8")
        return Answer(404, "this witness has cosigned no checkpoint of that log\n")

    def _open(self, note: str) -> tuple[Checkpoint, str]:
        origin = note.split("\n", 1)[0]
        verifier = self.logs.get(origin)
        if verifier is None:
            raise _Refused(404, f"this witness does not watch the log {origin[:200]!r}")
        try:
            text, _ = split_note(note)
            verified = verifier.verify(note)
            return Checkpoint.parse(verified, origin), text
        except Refusal as refusal:
            raise _Refused(403, refusal.reason) from None

    def _decide(
        self, request: _Request, checkpoint: Checkpoint, text: str, current: Cosigned | None
    ) -> Cosigned | None:
        """Under the state's write lock: the spec's checks against what was cosigned last, then the cosignature."""
        last = current.size if current is not None else 0
        if request.old != last:
            raise _Refused(409, f"the last cosigned size is {last}", body=f"{last}\n", content_type="text/x.tlog.size")
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise _Refused(422, "a checkpoint of size 0 must have the empty tree's root")
        if request.old == 0:
            if request.proof:
                raise _Refused(422, "no consistency proof is needed (or allowed) from size 0")
        elif request.old == checkpoint.size:
            assert current is not None
            if request.proof or checkpoint.root != current.root:
                raise _Refused(422, f"the checkpoint's root differs from the one cosigned at size {current.size}")
            if text != split_note(current.checkpoint)[0]:  # same tree, other lines: two bodies for one size
                raise _Refused(422, f"the checkpoint differs from the one cosigned at size {current.size}")
        else:
            assert current is not None
            if not verify_consistency(request.old, checkpoint.size, current.root, checkpoint.root, request.proof):
                raise _Refused(
                    422, f"the consistency proof from size {request.old} to {checkpoint.size} does not verify"
                )
        now = int(self._clock())
        return Cosigned(
            origin=checkpoint.origin,
            size=checkpoint.size,
            root=checkpoint.root,
            checkpoint=_as_signed_by_log(request.note),
            cosignature=self.signer.cosign(text, now),
            updated_at=now,
        )


def _as_signed_by_log(note: str) -> str:
    """The checkpoint with the log's own signature lines only: what the evidence needs, no padding."""
    text, lines = split_note(note)
    origin = text.split("\n", 1)[0]
    return text + "\n" + "".join(line + "\n" for line in lines if line.startswith(f"\u2014 {origin} "))


def _parse(body: bytes) -> _Request:
    if len(body) > MAX_REQUEST_BYTES:
        raise _Refused(400, f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "the request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise _Refused(400, "the request is an old size line, proof lines, a blank line, then the checkpoint")
    lines = head.split("\n")
    found = _OLD.fullmatch(lines[0])
    if found is None:
        raise _Refused(400, "the first line must read 'old <size>' (decimal, no leading zeroes)")
    if int(found.group(1)) > MAX_TREE_SIZE:
        raise _Refused(400, f"old size above {MAX_TREE_SIZE}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _Refused(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise _Refused(400, "a consistency proof line is not base64") from None
        if len(node) != 32:
            raise _Refused(400, "a consistency proof line is not a 32-byte hash")
        proof.append(node)
    return _Request(int(found.group(1)), proof, note)
