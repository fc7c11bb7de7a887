"""The gateway's own keys as every process sees them, and how they rotate with no failed request.

Three keys sign what others check: the access-token key (ES256 JWTs and delivery tokens, checked
against ``/.well-known/jwks.json``), the seal key (seals recipients verify with the pinned
``/.well-known/gateway-seal.pem``) and the checkpoint key (audit checkpoints, checked with the
verifier key).  ``gateway keys rotate KIND`` replaces one in two steps, each a file written
atomically under ``keys/rotation/`` and picked up by every server and worker within a second
(:meth:`KeyRing.refresh`, by file modification times):

1. *publishing* — the new key is announced: tokens signed with it verify, the JWKS and the seal
   certificate bundle list it, checkpoints are signed by both keys; nothing is signed with it yet
   by itself.  The command waits (``--publish-seconds``) so every process has seen it.
2. *overlap* — the new key becomes the current one (its file replaces the old at the configured
   path) and the old one is kept for ``--overlap-hours``: tokens and seals made with it still
   verify and are still published, checkpoints are still cosigned by it, so a verifier that only
   knows the old verifier key keeps working until it is told the new one.

A process that has read the new current file but not yet the state, or the other way round,
still accepts both keys, because both states list both.  Old checkpoint keys stay known for
verifying stored checkpoints forever (``rotation/checkpoint-*.key``); old seal certificates stay
published for that reason too, their private keys unused.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import AnyOfVerifiers, NoteSigner, NoteVerifier
from gateway.config import Config
from gateway.keys import GatewayKeys, load_ed25519_key
from gateway.store.durable import write_durably
from gateway.trust import pki

log = logging.getLogger(__name__)

KINDS = ("token", "seal", "checkpoint")


@dataclass(frozen=True)
class Rotation:
    """One kind's rotation state, as ``rotation/<kind>.json`` says."""

    kind: str
    phase: str  # "publishing" or "overlap"
    new: str  # file names (in rotation/) of the keys involved
    old: str
    started: int
    until: int  # publishing: when the command promotes; overlap: when the old key is dropped

    def active(self, now: float) -> bool:
        return self.phase == "publishing" or now < self.until


def rotation_dir(config: Config) -> Path:
    return config.keys_dir / "rotation"


def current_path(config: Config, kind: str) -> Path:
    return {"token": config.token_key_path, "seal": config.seal_key_path, "checkpoint": config.audit_key_path}[kind]


def read_rotation(config: Config, kind: str) -> Rotation | None:
    path = rotation_dir(config) / f"{kind}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Rotation(
            kind, str(data["phase"]), str(data["new"]), str(data["old"]), int(data["started"]), int(data["until"])
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a rotation state file ({exc}); fix or remove it") from None


def write_rotation(config: Config, rotation: Rotation) -> None:
    folder = rotation_dir(config)
    folder.mkdir(mode=0o700, exist_ok=True)
    body = {k: getattr(rotation, k) for k in ("phase", "new", "old", "started", "until")}
    write_durably(folder / f"{rotation.kind}.json", json.dumps(body, indent=1).encode())


@dataclass(frozen=True)
class RingSnapshot:
    """Everything rotating, read together so a request never sees half a rotation."""

    keys: GatewayKeys
    token_keys: dict[str, ec.EllipticCurvePublicKey]  # kid → key: every access-token key that verifies now
    checkpoint_signers: tuple[NoteSigner, ...]  # the current key first; cosigners during a rotation
    checkpoint_verifiers: tuple[NoteVerifier, ...]  # every checkpoint key this gateway ever used
    seal_chains: tuple[tuple[x509.Certificate, ...], ...]  # the current chain first, then the others published
    rotations: tuple[Rotation, ...] = field(default=())
    # Every checkpoint verifier key, current first.  In a process that does not sign (no signers
    # above), read from the signer's public file; empty until the signer has written it.
    checkpoint_vkeys: tuple[str, ...] = field(default=())


class KeyRing:
    """This process's view of the gateway's keys; :meth:`refresh` re-reads them when a rotation wrote files."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[Any, ...] | None = None
        self.snapshot = self._load()
        self._seen = self._fingerprint()

    @property
    def keys(self) -> GatewayKeys:
        return self.snapshot.keys

    def refresh(self) -> bool:
        """Reload when a key or rotation file changed, or an overlap ended; True when something changed."""
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        with self._lock:
            if seen == self._seen:
                return False
            self.snapshot = self._load()
            self._seen = seen
        return True

    def _fingerprint(self) -> tuple[Any, ...]:
        def stamp(path: Path) -> float:
            try:
                return path.stat().st_mtime_ns
            except FileNotFoundError:
                return 0

        config = self._config
        files = [current_path(config, k) for k in KINDS] + [config.seal_cert_path, config.audit_vkeys_path]
        files += [rotation_dir(config) / f"{k}.json" for k in KINDS]
        now = self._clock()
        # The end of an overlap changes the snapshot with no file changing: it is part of the fingerprint.
        ended = tuple(r.active(now) for r in self.snapshot.rotations) if self._seen is not None else ()
        return (*(stamp(p) for p in files), ended)

    def _load(self) -> RingSnapshot:
        config = self._config
        keys = GatewayKeys.load(config)
        now = self._clock()
        rotations = tuple(r for k in KINDS if (r := read_rotation(config, k)) is not None)
        folder = rotation_dir(config)
        token_keys = {keys.token_kid: keys.token_key.public_key()}
        signing = keys.audit_key is not None
        signers = [NoteSigner(config.audit_origin, keys.audit_key)] if keys.audit_key is not None else []
        chains = [keys.seal_chain]
        for rotation in rotations:
            if not rotation.active(now):
                continue
            for name in (rotation.new, rotation.old):
                path = folder / name
                if rotation.kind == "token":
                    key = pki.load_private_key(path)
                    if isinstance(key, ec.EllipticCurvePrivateKey):
                        token_keys.setdefault(pki.key_id(key), key.public_key())
                elif rotation.kind == "checkpoint" and signing:
                    other = NoteSigner(config.audit_origin, load_ed25519_key(path))
                    if other.vkey != signers[0].vkey:
                        signers.append(other)
                elif rotation.kind == "seal":
                    chain = tuple(pki.load_certificates(path.with_suffix(".crt")))
                    if chain[0] != keys.seal_chain[0]:
                        chains.append(chain)
        verifiers = {s.vkey: s.verifier for s in signers}
        if signing:
            for path in sorted(folder.glob("checkpoint-*.key")) if folder.is_dir() else []:
                retired = NoteSigner(config.audit_origin, load_ed25519_key(path))
                verifiers.setdefault(retired.vkey, retired.verifier)
            write_vkeys(config, list(verifiers))
        else:
            verifiers = {vkey: NoteVerifier.parse(vkey) for vkey in read_vkeys(config)}
        for path in sorted(folder.glob("seal-*.crt")) if folder.is_dir() else []:
            chain = tuple(pki.load_certificates(path))
            if all(chain[0] != c[0] for c in chains):
                chains.append(chain)  # retired seal certificates: old seals must stay verifiable
        return RingSnapshot(
            keys, token_keys, tuple(signers), tuple(verifiers.values()), tuple(chains), rotations, tuple(verifiers)
        )

    @property
    def origin(self) -> str:
        return self._config.audit_origin

    @property
    def checkpoint_verifier(self) -> AnyOfVerifiers:
        """Opens any checkpoint this gateway ever signed (stored ones predate rotations)."""
        return AnyOfVerifiers(self.snapshot.checkpoint_verifiers)


def write_vkeys(config: Config, vkeys: list[str]) -> None:
    """The signer publishes its verifier keys for the processes that do not hold the key (issue 13).

    Written only when they changed, atomically; a read-only keys folder (the file was written by
    `gateway init` or a rotation on the host) is not an error for the signer."""
    path = config.audit_vkeys_path
    text = "".join(v + "\n" for v in vkeys)
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
        write_durably(path, text.encode("utf-8"), mode=0o644)  # public: the other processes' users read it
    except OSError as exc:
        log.warning("could not write the audit verifier keys to %s (%s)", path, exc.strerror)


def read_vkeys(config: Config) -> list[str]:
    """What a process that does not sign knows of the log's verifier keys: nothing until the signer wrote them."""
    try:
        text = config.audit_vkeys_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def _copy(source: Path, target: Path) -> None:
    pki.write_private_file(target, source.read_bytes())


def _replace(target: Path, data: bytes) -> None:
    """Write ``target`` whole or not at all: readers see the old file or the new one (owner-only)."""
    write_durably(target, data)


def start_rotation(
    config: Config,
    kind: str,
    *,
    publish_seconds: int,
    new_key: Path | None = None,
    new_cert: Path | None = None,
    now: float | None = None,
) -> Rotation:
    """Step 1: keep a copy of the current key, write the new one beside it, and announce it."""
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}; rotate one of: {', '.join(KINDS)}")
    existing = read_rotation(config, kind)
    started = time.time() if now is None else now
    if existing is not None and existing.phase == "publishing":
        raise ValueError(
            f"a {kind} key rotation is already being published; finish it with `gateway keys rotate {kind}`"
        )
    folder = rotation_dir(config)
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = f"{kind}-{int(started)}-{os.urandom(3).hex()}"
    old, new = f"{stamp}-old.key", f"{stamp}-new.key"
    _copy(current_path(config, kind), folder / old)
    if kind == "seal":
        if new_key is None or new_cert is None:
            raise ValueError("a seal key rotates with the new key and its certificate: --key FILE --cert FILE")
        key, chain = pki.load_private_key(new_key), pki.load_certificates(new_cert)
        if not chain or not pki.same_public_key(key, chain[0]):
            raise ValueError(f"{new_cert} is not the certificate of {new_key}")
        _copy(config.seal_cert_path, (folder / old).with_suffix(".crt"))
        _copy(new_cert, (folder / new).with_suffix(".crt"))
        _copy(new_key, folder / new)
    else:
        fresh: Any = pki.generate_key("ec") if kind == "token" else Ed25519PrivateKey.generate()
        if new_key is not None:
            fresh = pki.load_private_key(new_key) if kind == "token" else load_ed25519_key(new_key)
        pki.save_private_key(fresh, folder / new)
    rotation = Rotation(kind, "publishing", new, old, int(started), int(started) + publish_seconds)
    write_rotation(config, rotation)
    return rotation


def promote(config: Config, rotation: Rotation, *, overlap_seconds: int, now: float | None = None) -> Rotation:
    """Step 2: the new key becomes the current one; the old one is still accepted for ``overlap_seconds``."""
    moment = time.time() if now is None else now
    overlap = Rotation(
        rotation.kind, "overlap", rotation.new, rotation.old, rotation.started, int(moment) + overlap_seconds
    )
    write_rotation(config, overlap)  # both keys stay accepted whichever file a process reads first
    folder = rotation_dir(config)
    if rotation.kind == "seal":  # key and certificate must match: KeyRing refuses a mixed pair and retries
        _replace(config.seal_key_path, (folder / rotation.new).read_bytes())
        _replace(config.seal_cert_path, (folder / rotation.new).with_suffix(".crt").read_bytes())
    else:
        _replace(current_path(config, rotation.kind), (folder / rotation.new).read_bytes())
    return overlap
