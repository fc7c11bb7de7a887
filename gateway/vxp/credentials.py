"""The ``systemid``/``secret`` pairs departmental systems built on the national SDK log in with.

The SDK signs each call with HMAC-SHA256 keyed by the secret (gateway.vxp.protocol), so the
gateway must hold the secret itself, not a hash of it: it is stored sealed with AES-256-GCM under a
key derived from the deployment's pepper (HKDF-SHA256, its own ``info``), bound to its systemid.
A database copy without ``keys/`` reveals no secret; the secret is shown once, when issued.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Connection

from gateway.store.db import Database
from gateway.store.tables import vxp_credentials


@dataclass(frozen=True)
class Credential:
    systemid: str
    agency: str
    secret: str


class VxpCredentials:
    def __init__(self, db: Database, pepper: bytes) -> None:
        self._db = db
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"gateway vxp credentials").derive(pepper)
        self._aead = AESGCM(key)

    def issue(self, conn: Connection, agency: str) -> Credential:
        """A new secret for ``agency`` (its systemid is its code): any earlier one stops working."""
        systemid, secret = agency, secrets.token_urlsafe(32)
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), _bound(systemid, agency))
        values = {"agency": agency, "secret_sealed": sealed, "created_at": datetime.now(UTC)}
        if not conn.execute(
            sa.update(vxp_credentials).where(vxp_credentials.c.systemid == systemid).values(**values)
        ).rowcount:
            conn.execute(sa.insert(vxp_credentials).values(systemid=systemid, **values))
        return Credential(systemid, agency, secret)

    def lookup(self, systemid: str) -> Credential | None:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(vxp_credentials).where(vxp_credentials.c.systemid == systemid[:64])
            ).one_or_none()
        if row is None:
            return None
        sealed = bytes(row.secret_sealed)
        try:
            secret = self._aead.decrypt(sealed[:12], sealed[12:], _bound(row.systemid, row.agency)).decode()
        except InvalidTag:  # another deployment's pepper, or moved to another systemid or agency: none
            return None
        return Credential(row.systemid, row.agency, secret)


def _bound(systemid: str, agency: str) -> bytes:
    """What the sealed secret is bound to (AES-GCM's associated data): moving it to another systemid
    or pointing its systemid at another agency in the database makes it open to nothing."""
    return f"{systemid}\n{agency}".encode()
