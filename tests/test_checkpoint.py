"""Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint) with Ed25519."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from gateway.audit.merkle import EMPTY_ROOT
from gateway.policy import Refusal

ORIGIN = "gateway.example/audit"


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def test_checkpoint_round_trip_through_vkey(signer):
    note = signer.sign(Checkpoint(ORIGIN, 42, EMPTY_ROOT).text())
    assert note.startswith(f"{ORIGIN}\n42\n{base64.b64encode(EMPTY_ROOT).decode()}\n\n\u2014 {ORIGIN} ")
    verifier = NoteVerifier.parse(signer.vkey)
    assert open_checkpoint(note, verifier) == Checkpoint(ORIGIN, 42, EMPTY_ROOT)


def test_wrong_key_wrong_name_and_tampered_text_are_refused(signer):
    note = signer.sign(Checkpoint(ORIGIN, 7, EMPTY_ROOT).text())
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(Refusal):
        open_checkpoint(note, NoteVerifier.parse(other.vkey))
    renamed = NoteSigner("other.example/audit", signer.private_key)
    with pytest.raises(Refusal):
        open_checkpoint(note, NoteVerifier.parse(renamed.vkey))
    with pytest.raises(Refusal):
        open_checkpoint(note.replace("\n7\n", "\n8\n"), NoteVerifier.parse(signer.vkey))


def test_extra_unknown_signatures_are_ignored(signer):
    note = signer.sign(Checkpoint(ORIGIN, 3, EMPTY_ROOT).text())
    witness = NoteSigner("witness.example", Ed25519PrivateKey.generate())
    extra = witness.sign(Checkpoint(ORIGIN, 3, EMPTY_ROOT).text()).split("\n\n")[1]
    cosigned = note + extra + "\u2014 someone-else AAAA\n"
    assert open_checkpoint(cosigned, NoteVerifier.parse(signer.vkey)).size == 3


def test_malformed_notes_checkpoints_and_vkeys_are_refused(signer):
    verifier = NoteVerifier.parse(signer.vkey)
    for bad in ("", "no blank line\n", f"{ORIGIN}\n1\nAAA=\n\nnot a signature\n"):
        with pytest.raises(Refusal):
            open_checkpoint(bad, verifier)
    for text in (
        f"{ORIGIN}\n01\n{base64.b64encode(EMPTY_ROOT).decode()}\n",
        f"{ORIGIN}\n1\nAAAA\n",
        f"x\n1\n{base64.b64encode(EMPTY_ROOT).decode()}\n",
    ):
        with pytest.raises(Refusal):
            open_checkpoint(signer.sign(text), verifier)
    for vkey in ("", "a+b+c", signer.vkey.replace("+", "+00", 1), signer.vkey[:-4] + "AAA="):
        with pytest.raises(Refusal):
            NoteVerifier.parse(vkey)


def test_verifier_keys_whose_base64_contains_plus_parse():
    """A flaky failure found on the way: the base64 key part may itself contain '+'."""
    signer = next(
        s for s in (NoteSigner(ORIGIN, Ed25519PrivateKey.generate()) for _ in range(500)) if s.vkey.count("+") > 2
    )
    assert NoteVerifier.parse(signer.vkey).key_id == signer.verifier.key_id
