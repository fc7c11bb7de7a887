"""Signed checkpoints in the C2SP ``tlog-checkpoint`` format, as C2SP ``signed-note`` texts with Ed25519.

A checkpoint is the text ``<origin>\\n<tree size>\\n<base64 root hash>\\n``; the note appends a blank
line and one line per signature, ``— <key name> <base64(key ID || signature)>``.  The key ID is the
first four bytes of SHA-256(key name || "\\n" || 0x01 || Ed25519 public key), and the verifier key is
published as ``<name>+<hex key ID>+<base64(0x01 || public key)>`` (``gateway audit vkey``).
Anyone holding that string can check a checkpoint without trusting the operator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.policy import Refusal

ED25519 = b"\x01"
DASH = "\u2014"
CODE = "checkpoint-invalid"
_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
MAX_TREE_SIZE = 2**63 - 1


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw).digest()[:4]


_KEY_TYPES = {
    b"\x01": "a log's checkpoint key (`gateway audit vkey`)",
    b"\x04": "a witness's cosigning key (`gateway witness vkey`)",
}


def parse_vkey(
    vkey: str, key_type: bytes, key_id_of: Callable[[str, Ed25519PublicKey], bytes], kind: str
) -> tuple[str, bytes, Ed25519PublicKey]:
    """A signed-note verifier key ``<name>+<hex key ID>+<base64(type || Ed25519 key)>``: name, key ID, key.

    The key ID must be the one computed from name and key (so a name cannot be swapped onto a key),
    and the type byte the one ``kind`` needs (a checkpoint key is not a witness's cosigning key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3 or not _NAME.fullmatch(parts[0]):
        raise Refusal("vkey-invalid", f"a {kind} reads <name>+<hex key ID>+<base64 key>")
    try:
        declared = bytes.fromhex(parts[1])
        raw = base64.b64decode(parts[2], validate=True)
    except (ValueError, binascii.Error):
        raise Refusal(
            "vkey-invalid", f"the key ID or key of the {kind} is not well-formed: copy the whole key again"
        ) from None
    if len(declared) != 4 or len(raw) != 33:
        raise Refusal("vkey-invalid", f"the {kind} is cut short or padded: copy the whole key")
    if raw[:1] != key_type:
        found = _KEY_TYPES.get(raw[:1], f"a key of type 0x{raw[:1].hex()}")
        raise Refusal("vkey-invalid", f"this is {found}, not a {kind}")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id_of(parts[0], public) != declared:
        raise Refusal("vkey-invalid", f"the {kind}'s ID does not match its name and key")
    return parts[0], declared, public


def format_vkey(name: str, key_id: bytes, key_type: bytes, public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{name}+{key_id.hex()}+{base64.b64encode(key_type + raw).decode()}"


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Read ``<name>+<hex key ID>+<base64(0x01 || key)>``; :class:`Refusal` ``vkey-invalid`` otherwise."""
        return cls(*parse_vkey(vkey, ED25519, key_id, "log checkpoint key (type 0x01)"))

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, ED25519, self.public_key)

    def verify(self, note: str) -> str:
        """The note's text when it carries a valid signature by this key; signatures by other keys are ignored."""
        text, signatures = split_note(note)
        found = False
        for line in signatures:  # every line by this key, so the verdict never depends on their order
            name, _, blob = line[2:].partition(" ")
            if name != self.name:
                continue
            try:
                raw = base64.b64decode(blob, validate=True)
            except (ValueError, binascii.Error):
                continue
            if len(raw) != 68 or raw[:4] != self.key_id:
                continue
            try:
                self.public_key.verify(raw[4:], text.encode())
            except InvalidSignature:
                raise Refusal(CODE, f"the signature by {self.name} does not verify") from None
            found = True
        if not found:
            raise Refusal(CODE, f"the note carries no signature by {self.name} with key ID {self.key_id.hex()}")
        return text


@dataclass(frozen=True)
class NoteSigner:
    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError("a key name has no spaces and no '+'")

    @property
    def verifier(self) -> NoteVerifier:
        public = self.private_key.public_key()
        return NoteVerifier(self.name, key_id(self.name, public), public)

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def sign(self, text: str) -> str:
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("a note's text ends with one newline and has no blank line")
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class AnyOfVerifiers:
    """Several verifier keys of one log (its keys before and after a rotation): a note verifies with any."""

    verifiers: tuple[NoteVerifier, ...]

    def __post_init__(self) -> None:
        if not self.verifiers:
            raise ValueError("no verifier keys given")  # an empty set would verify nothing, silently

    @property
    def name(self) -> str:
        return self.verifiers[0].name

    def verify(self, note: str) -> str:
        failure: Refusal | None = None
        for verifier in self.verifiers:
            try:
                return verifier.verify(note)
            except Refusal as refusal:
                failure = failure or refusal
        assert failure is not None
        raise failure


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """One note signed by several keys (C2SP signed-note: one signature line each), e.g. during a rotation."""
    first, *others = signers
    note = first.sign(text)
    for signer in others:
        note += signer.sign(text).rsplit("\n\n", 1)[1]
    return note


def split_note(note: str) -> tuple[str, list[str]]:
    text, sep, block = note.rpartition("\n\n")
    if not sep or not block.endswith("\n"):
        raise Refusal(CODE, "not a signed note: text, a blank line, then signature lines")
    lines = block[:-1].split("\n")
    if not lines or any(not line.startswith(DASH + " ") for line in lines):
        raise Refusal(CODE, "every line after the blank line must be a signature line starting with an em dash")
    return text + "\n", lines


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str, origin: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise Refusal(CODE, "a checkpoint has an origin, a size and a root hash line")
        if lines[0] != origin:
            raise Refusal(CODE, f"the checkpoint is for {lines[0]!r}, not {origin!r}")
        if not _SIZE.fullmatch(lines[1]):
            raise Refusal(CODE, "the tree size is not a decimal number")
        if int(lines[1]) > MAX_TREE_SIZE:  # stored as a signed 64-bit integer everywhere (SQLite, PostgreSQL)
            raise Refusal(CODE, f"the tree size is above {MAX_TREE_SIZE}")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except (ValueError, binascii.Error):
            raise Refusal(CODE, "the root hash is not base64") from None
        if len(root) != 32:
            raise Refusal(CODE, "the root hash is not 32 bytes")
        return cls(origin, int(lines[1]), root)


def open_checkpoint(note: str, verifier: NoteVerifier | AnyOfVerifiers) -> Checkpoint:
    """The checkpoint of a signed note, only when the note verifies: proofs take their size and root from here."""
    return Checkpoint.parse(verifier.verify(note), verifier.name)
