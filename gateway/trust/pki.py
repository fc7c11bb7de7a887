"""Key and certificate plumbing: generate, save, load, fingerprint.

Private keys are written 0600 and loaded once (DESIGN.md §8: parsing an RSA PEM costs ~30 ms).
Nothing here logs or returns private key material.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def generate_key(kind: str = "rsa") -> SigningKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}: use rsa or ec")


def save_private_key(key: PrivateKey, path: Path) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private_file(path, pem)


def write_private_file(path: Path, data: bytes) -> None:
    """Create or replace a file readable by its owner only (private keys, the pepper)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_private_key(path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: only RSA and EC private keys are supported")
    return key


def public_pem(key: PrivateKey | PublicKey) -> str:
    public = key.public_key() if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str | bytes) -> PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key: object
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("only RSA and EC public keys are supported")
    return key


def save_certificate(cert: x509.Certificate, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def load_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@functools.lru_cache(maxsize=4096)
def fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER certificate: the id we pin certificates by (asked several times
    per document for the same few certificates, hence remembered)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def same_public_key(key: SigningKey, cert: x509.Certificate) -> bool:
    """Whether ``cert`` certifies ``key`` (a key file and its certificate, replaced one after the other)."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    return mine == cert.public_key().public_bytes(serialization.Encoding.DER, spki)


def key_id(key: PrivateKey | PublicKey) -> str:
    """A stable short id for a public key (JWKS ``kid``): SHA-256 of its SubjectPublicKeyInfo."""
    public = key.public_key() if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else key
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:16]


def key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """A KeyUsage naming only the bits a certificate needs (the rest are always off here)."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Issued:
    key: SigningKey
    cert: x509.Certificate


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    common_name: str = "Interconnect Gateway Development CA",
    days: int = 3650,
    *,
    issuer: Issued | None = None,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
) -> Issued:
    """A self-signed root, or with ``issuer`` a subordinate CA (as NEAC's root issues the licensed CAs)."""
    key = generate_key("ec")
    now = datetime.now(UTC)
    name = _name(common_name, "Development only - not for production")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1 if issuer is None else 0), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        return Issued(key, builder.sign(key, hashes.SHA256()))
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
    )
    return Issued(key, _finish(builder, issuer, ocsp_url, crl_url, None))


def issue_signing_certificate(
    ca: Issued,
    common_name: str,
    organization: str,
    *,
    key: SigningKey | None = None,
    days: int = 825,
    not_before: datetime | None = None,
    key_usage_signing: bool = True,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    extended_key_usage: Sequence[x509.ObjectIdentifier] | None = None,
    ca_flag: bool = False,
) -> Issued:
    """A document-signing certificate (digitalSignature + nonRepudiation) issued by ``ca``.

    ``ocsp_url`` and ``crl_url`` become the AIA and CDP extensions relying parties look up status at
    (RFC 5280 §4.2.2.1, §4.2.1.13); the other options exist to make the certificates a policy must refuse.
    """
    key = key or generate_key("rsa")
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            key_usage(
                digital_signature=key_usage_signing,
                content_commitment=key_usage_signing,
                key_encipherment=not key_usage_signing,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    return Issued(key, _finish(builder, ca, ocsp_url, crl_url, extended_key_usage))


def _finish(
    builder: x509.CertificateBuilder,
    ca: Issued,
    ocsp_url: str | None,
    crl_url: str | None,
    extended_key_usage: Sequence[x509.ObjectIdentifier] | None,
    *,
    eku_critical: bool = False,
) -> x509.Certificate:
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            ),
            critical=False,
        )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=eku_critical)
    return builder.sign(ca.key, hashes.SHA256())


def issue_service_certificate(
    ca: Issued,
    common_name: str,
    purpose: x509.ObjectIdentifier,
    *,
    key: SigningKey | None = None,
    days: int = 825,
    not_before: datetime | None = None,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    ocsp_no_check: bool = False,
) -> Issued:
    """A certificate for one of the CA's services: an OCSP responder (``id-kp-OCSPSigning``) or a TSA
    (``id-kp-timeStamping``, critical as RFC 3161 §2.3 requires)."""
    key = key or generate_key("ec")
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, "Development only - not for production"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=True, content_commitment=purpose == ExtendedKeyUsageOID.TIME_STAMPING),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if ocsp_no_check:  # RFC 6960 §4.2.2.2.1: the responder's own certificate is not checked by OCSP
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    cert = _finish(builder, ca, ocsp_url, crl_url, [purpose], eku_critical=purpose == ExtendedKeyUsageOID.TIME_STAMPING)
    return Issued(key, cert)
