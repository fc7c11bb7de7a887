"""Ed25519 cosignatures, C2SP ``tlog-cosignature`` (``cosignature/v1``).

A cosignature is a signed-note signature line ``— <witness name> base64(key ID || timestamp || sig)``
added to a checkpoint.  The key ID is SHA-256(name || "\\n" || 0x04 || public key)[:4]; the signed
message is ``cosignature/v1\\n``, ``time <POSIX seconds>\\n`` and the checkpoint's note body.  The
timestamp is the witness saying "as of this time, this is the largest tree I have seen of that log".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.checkpoint import DASH, format_vkey, parse_vkey
from gateway.policy import Refusal

COSIGNATURE_V1 = b"\x04"
CODE = "cosignature-invalid"
_NAME = re.compile(r"[^\s+]+")


def cosignature_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + raw).digest()[:4]


def signed_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 ``cosignature/v1`` signs: the header line, the time line, the checkpoint body."""
    return b"cosignature/v1\ntime %d\n" % timestamp + body.encode()


@dataclass(frozen=True)
class CosignatureVerifier:
    """One witness's public key, as policies and the gateway's configuration name it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """``<name>+<hex key ID>+<base64(0x04 || key)>``; :class:`Refusal` ``vkey-invalid`` otherwise."""
        return cls(*parse_vkey(vkey, COSIGNATURE_V1, cosignature_key_id, "witness cosigning key (cosignature/v1)"))

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, COSIGNATURE_V1, self.public_key)

    def timestamp(self, body: str, line: str) -> int | None:
        """The time of this witness's cosignature ``line`` on ``body``; None when the line is another key's.

        A line with this witness's name and key ID whose signature fails is refused, not ignored: per
        signed-note such a note is malformed."""
        if not line.startswith(DASH + " "):
            return None
        name, _, blob = line[2:].partition(" ")
        if name != self.name:
            return None
        try:
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            return None
        if len(raw) != 4 + 8 + 64 or raw[:4] != self.key_id:
            return None
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        if timestamp >= 1 << 63:
            raise Refusal(CODE, f"the cosignature by {self.name} has an impossible timestamp")
        try:
            self.public_key.verify(raw[12:], signed_message(body, timestamp))
        except InvalidSignature:
            raise Refusal(CODE, f"the cosignature by {self.name} does not verify") from None
        return int(timestamp)


@dataclass(frozen=True)
class CosignatureSigner:
    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError("a witness name has no spaces and no '+'")

    @property
    def verifier(self) -> CosignatureVerifier:
        public = self.private_key.public_key()
        return CosignatureVerifier(self.name, cosignature_key_id(self.name, public), public)

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def cosign(self, body: str, timestamp: int) -> str:
        """The signature line (newline-terminated) cosigning checkpoint ``body`` at ``timestamp``."""
        if timestamp <= 0 or timestamp >= 1 << 63:
            raise ValueError("a cosignature's timestamp is a positive POSIX time")
        signature = self.private_key.sign(signed_message(body, timestamp))
        blob = base64.b64encode(self.verifier.key_id + struct.pack(">Q", timestamp) + signature).decode()
        return f"{DASH} {self.name} {blob}\n"
