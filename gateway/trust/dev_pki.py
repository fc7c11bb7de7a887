"""Status services of the *development* CA: its revocation record, OCSP responder and CRL.

Development and demo only.  These are served when the gateway runs in demo mode, and by the tests,
so that the status checks in :mod:`gateway.trust.ocsp` and :mod:`gateway.trust.crl` run against a
real responder end to end.  A production deployment never serves them: its agencies' certificates
come from licensed CAs whose own responders and CRLs are queried instead.

The revocation record is a small JSON file (the deployment uses ``keys/dev-revocations.json``) shared
by every worker process, so that revoking a demo signer in one process is seen by the responder in all:

    {"<serial, lower-case hex>": {"revoked_at": "<ISO 8601, UTC>", "reason": "keyCompromise"}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.trust import pki
from gateway.trust.ocsp import cert_id_hashes
from gateway.trust.status import now_utc

Revocation = tuple[datetime, x509.ReasonFlags]
_Stamp = tuple[int, int, int]  # inode, mtime_ns, size: os.replace always changes the inode


class DevRevocations:
    """The development CA's record of revoked serial numbers, in a JSON file several processes share.

    Reads are cached and re-read whenever the file's identity, mtime or size changed, so a revocation
    written by another process is seen on the next lookup.  Writes take an exclusive ``flock`` on a
    sidecar ``.lock`` file (read-modify-write must not lose another process's revocation) and replace
    the file atomically, so a reader never sees half a record.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None
        self._entries: dict[int, Revocation] = {}

    @property
    def path(self) -> Path:
        return self._path

    def revoke(
        self,
        cert: x509.Certificate,
        *,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
        at: datetime | None = None,
    ) -> None:
        """Record ``cert`` as revoked at ``at`` (default now) for ``reason``.

        Revocation is permanent (RFC 5280 §3.3), so revoking an already revoked certificate keeps the
        first record — its date must not move — unless that was ``certificateHold``, the one reason
        that may later change (RFC 5280 §5.3.1).
        """
        when = at or now_utc()
        if when.utcoffset() is None:
            raise ValueError("the revocation time must be an aware datetime")
        with self._lock, self._file_lock():
            entries = self._load()[1]
            previous = entries.get(cert.serial_number)
            if previous is None or previous[1] is x509.ReasonFlags.certificate_hold:
                entries[cert.serial_number] = (when, reason)
                self._write(entries)
            self._stamp, self._entries = self._load()

    def lookup(self, serial: int) -> Revocation | None:
        """When and why ``serial`` was revoked, or ``None`` if it is not."""
        with self._lock:
            self._refresh()
            return self._entries.get(serial)

    def all(self) -> dict[int, Revocation]:
        """Every revoked serial (a copy)."""
        with self._lock:
            self._refresh()
            return dict(self._entries)

    def _refresh(self) -> None:
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return
        if (info.st_ino, info.st_mtime_ns, info.st_size) != self._stamp:
            self._stamp, self._entries = self._load()

    def _load(self) -> tuple[_Stamp | None, dict[int, Revocation]]:
        try:
            handle = open(self._path, "rb")  # noqa: SIM115 - stat and read the same open file
        except FileNotFoundError:
            return None, {}
        with handle:
            info = os.fstat(handle.fileno())
            raw = handle.read()
        return (info.st_ino, info.st_mtime_ns, info.st_size), _decode(raw, self._path)

    def _write(self, entries: dict[int, Revocation]) -> None:
        document = {
            format(serial, "x"): {"revoked_at": when.isoformat(), "reason": reason.value}
            for serial, (when, reason) in sorted(entries.items())
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path.with_name(self._path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _decode(raw: bytes, path: Path) -> dict[int, Revocation]:
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise TypeError("not an object")
        entries: dict[int, Revocation] = {}
        for serial_hex, entry in document.items():
            when = datetime.fromisoformat(entry["revoked_at"])
            if when.utcoffset() is None:
                raise ValueError("naive revocation time")
            entries[int(serial_hex, 16)] = (when, x509.ReasonFlags(entry["reason"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a revocation record: {exc}") from None
    return entries


def _revoked_by(revocation: Revocation | None, moment: datetime) -> Revocation | None:
    """A revocation dated after ``moment`` had not happened yet at ``moment``."""
    return revocation if revocation is not None and revocation[0] <= moment else None


def _reason_or_none(reason: x509.ReasonFlags) -> x509.ReasonFlags | None:
    """RFC 5280 §5.3.1: omit the reason code rather than send ``unspecified``."""
    return None if reason is x509.ReasonFlags.unspecified else reason


class DevOcspResponder:
    """An OCSP responder (RFC 6960) for the development CA, answering from :class:`DevRevocations`.

    Responses are signed by ``delegate`` when given — a responder certificate the CA issued with
    id-kp-OCSPSigning, included in the response (§4.2.2.2) — and otherwise by the CA itself.  Because
    tests build the "wrong" responders too, ``delegate`` is not checked here: a certificate without
    OCSPSigning, or one from another CA, produces exactly the response a verifier must refuse.
    """

    def __init__(
        self,
        ca: pki.Issued,
        revocations: DevRevocations,
        *,
        delegate: pki.Issued | None = None,
        validity: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._ca = ca
        self._revocations = revocations
        self._delegate = delegate
        self._validity = validity
        self._clock = clock

    def respond(self, request_der: bytes) -> bytes:
        """The DER OCSPResponse answering the DER OCSPRequest ``request_der``.

        An unparseable request gets ``malformedRequest`` (RFC 6960 §2.3); a request about a CA other
        than ours gets a signed ``unknown`` (§2.2); otherwise ``good`` or ``revoked``.  The CertID is
        echoed with the request's own hash algorithm and the nonce is echoed (§4.4.1).
        """
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            serial = request.serial_number
            name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
            nonce = _request_nonce(request)
            ours = (name_hash, key_hash) == _ca_hashes(self._ca.cert, algorithm)
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        this_update = self._clock()
        try:
            revocation = _revoked_by(self._revocations.lookup(serial), this_update) if ours else None
        except (OSError, ValueError):
            return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
        if not ours:
            status = ocsp.OCSPCertStatus.UNKNOWN
        elif revocation is None:
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.REVOKED
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            name_hash,
            key_hash,
            serial,
            algorithm,
            status,
            this_update,
            this_update + self._validity,
            None if revocation is None else revocation[0],
            None if revocation is None else _reason_or_none(revocation[1]),
        )
        signer = self._delegate or self._ca
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        if self._delegate is not None:
            builder = builder.certificates([self._delegate.cert])
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _ca_hashes(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """The CertID issuer hashes of certificates ``ca`` issued: its *subject* name, and its key.

    (A CertID built for the CA's own certificate would hash the CA's issuer's name instead, which is
    the same only for a root.)"""
    name = hashes.Hash(algorithm)
    name.update(ca.subject.public_bytes())
    key_hash = cert_id_hashes(ca, ca, algorithm)[algorithm.digest_size :]
    return name.finalize(), key_hash


def _request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def build_dev_crl(
    ca: pki.Issued, revocations: DevRevocations, *, now: datetime, validity: timedelta = timedelta(hours=1)
) -> bytes:
    """A DER CRL (RFC 5280 §5) from the development CA listing every serial revoked by ``now``.

    It carries the §5.2.1 authority key identifier and §5.2.3 CRL number (seconds since the epoch of
    ``now``, so later CRLs get larger numbers), and each entry its CRLReason unless ``unspecified``.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .add_extension(x509.CRLNumber(max(int(now.timestamp()), 0)), critical=False)
    )
    for serial, revocation in sorted(revocations.all().items()):
        if _revoked_by(revocation, now) is None:
            continue
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revocation[0])
        reason = _reason_or_none(revocation[1])
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def issue_ocsp_delegate(ca: pki.Issued) -> pki.Issued:
    """A delegated OCSP responder certificate for ``ca`` (RFC 6960 §4.2.2.2), with id-pkix-ocsp-nocheck
    (§4.2.2.2.1) so that relying parties do not ask the responder about its own certificate."""
    return pki.issue_service_certificate(
        ca,
        "Interconnect Gateway OCSP responder (development)",
        ExtendedKeyUsageOID.OCSP_SIGNING,
        ocsp_no_check=True,
    )
