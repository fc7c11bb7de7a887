"""The gateway's own key material, loaded once at start-up and never logged or served.

``gateway keys init`` writes a development CA, the gateway's seal key and certificate and its
access-token signing key into ``keys/`` (git-ignored).  Production deployments point the settings
at keys issued by their own CA instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import Config
from gateway.trust import pki
from gateway.trust.chain import TrustStore

DEV_FILES = (
    "ca.key",
    "ca.crt",
    "gateway-seal.key",
    "gateway-seal.crt",
    "gateway-token.key",
    "citizen-id-pepper.key",
    "dev-idp.key",
    "audit-log.key",
    "dev-tsa.key",
    "dev-tsa.crt",
    "portal-signing.key",
    "portal-signing.crt",
)


@dataclass(frozen=True)
class DevStatusUrls:
    """Where development certificates say their status and the development TSA are (demo mode serves them)."""

    base: str

    @property
    def ocsp(self) -> str:
        return self.base.rstrip("/") + "/dev-pki/ocsp"

    @property
    def crl(self) -> str:
        return self.base.rstrip("/") + "/dev-pki/crl"

    @property
    def tsa(self) -> str:
        return self.base.rstrip("/") + "/dev-pki/tsa"


@dataclass(frozen=True)
class GatewayKeys:
    seal_key: pki.SigningKey
    seal_chain: tuple[x509.Certificate, ...]
    token_key: ec.EllipticCurvePrivateKey
    token_kid: str
    trust: TrustStore
    pepper: bytes
    audit_key: Ed25519PrivateKey | None  # only in the process that signs checkpoints (issue 13)
    # The citizen portal's document-signing key: dossiers the gateway builds are signed with it, never
    # with the seal key, so a seal is always by a different certificate than the document it seals.
    portal_key: pki.SigningKey | None = None
    portal_chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def load(cls, config: Config) -> GatewayKeys:
        missing = config.missing_key_files()
        if missing:
            raise FileNotFoundError("; ".join(missing))
        token_key = pki.load_private_key(config.token_key_path)
        if not isinstance(token_key, ec.EllipticCurvePrivateKey) or not isinstance(token_key.curve, ec.SECP256R1):
            raise ValueError(f"{config.token_key_path}: the access-token key must be an EC P-256 key (ES256)")
        anchors = [c for path in config.trust_anchor_paths for c in pki.load_certificates(path)]
        seal_key, seal_chain = pki.load_private_key(config.seal_key_path), pki.load_certificates(config.seal_cert_path)
        if not seal_chain or not pki.same_public_key(seal_key, seal_chain[0]):
            # Also seen for a moment while `gateway keys rotate seal` replaces the two files.
            raise ValueError(f"{config.seal_cert_path} is not the certificate of {config.seal_key_path}")
        return cls(
            seal_key=seal_key,
            seal_chain=tuple(seal_chain),
            token_key=token_key,
            token_kid=pki.key_id(token_key),
            trust=TrustStore(anchors),
            pepper=config.pepper_path.read_bytes(),
            audit_key=load_ed25519_key(config.audit_key_path) if config.signs_checkpoints else None,
            portal_key=pki.load_private_key(config.portal_key_path) if config.portal_key_path.is_file() else None,
            portal_chain=tuple(pki.load_certificates(config.portal_cert_path))
            if config.portal_cert_path.is_file()
            else (),
        )


def load_ed25519_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: the audit log's checkpoint key must be Ed25519")
    return key


def init_development_keys(keys_dir: Path, status: DevStatusUrls, *, force: bool = False) -> list[Path]:
    """Create the development keys that are missing (all of them with ``force``); returns what was written.

    Existing keys are kept unless ``force``: documents and seals made with them must keep verifying.
    Certificates name ``status`` as their OCSP responder and CRL, like a real CA's do.
    """
    if not force and all((keys_dir / name).exists() for name in DEV_FILES):
        raise FileExistsError(
            f"the development keys in {keys_dir}/ already exist: keep them, or pass --force to replace them "
            "(documents and seals made with the old keys will no longer verify)"
        )
    keys_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def missing(*names: str) -> bool:
        return force or not all((keys_dir / n).exists() for n in names)

    if missing("ca.key", "ca.crt"):
        ca = pki.make_ca()
        pki.save_private_key(ca.key, keys_dir / "ca.key")
        pki.save_certificate(ca.cert, keys_dir / "ca.crt")
        written += [keys_dir / "ca.key", keys_dir / "ca.crt"]
        force = True  # a new CA invalidates everything it issued
    signers = (
        ("gateway-seal", "Interconnect Gateway seal (development)", "Interconnect Gateway"),
        ("portal-signing", "Cổng Dịch vụ công (development)", "Interconnect Gateway citizen portal"),
    )
    for stem, common_name, organization in signers:  # two keys: a seal is never by the document's signer
        if missing(f"{stem}.key", f"{stem}.crt"):
            issued = pki.issue_signing_certificate(
                load_development_ca(keys_dir),
                common_name,
                organization,
                key=pki.generate_key("ec"),
                ocsp_url=status.ocsp,
                crl_url=status.crl,
            )
            pki.save_private_key(issued.key, keys_dir / f"{stem}.key")
            pki.save_certificate(issued.cert, keys_dir / f"{stem}.crt")
            written += [keys_dir / f"{stem}.key", keys_dir / f"{stem}.crt"]
    if missing("gateway-token.key"):
        pki.save_private_key(pki.generate_key("ec"), keys_dir / "gateway-token.key")
        written.append(keys_dir / "gateway-token.key")
    if missing("citizen-id-pepper.key"):
        pki.write_private_file(keys_dir / "citizen-id-pepper.key", os.urandom(32))
        written.append(keys_dir / "citizen-id-pepper.key")
    if missing("audit-log.key"):
        pki.save_private_key(Ed25519PrivateKey.generate(), keys_dir / "audit-log.key")
        written.append(keys_dir / "audit-log.key")
    if missing("dev-tsa.key", "dev-tsa.crt"):
        from cryptography.x509.oid import ExtendedKeyUsageOID

        tsa = pki.issue_service_certificate(
            load_development_ca(keys_dir),
            "Interconnect Gateway TSA (development)",
            ExtendedKeyUsageOID.TIME_STAMPING,
            ocsp_url=status.ocsp,
            crl_url=status.crl,
        )
        pki.save_private_key(tsa.key, keys_dir / "dev-tsa.key")
        pki.save_certificate(tsa.cert, keys_dir / "dev-tsa.crt")
        written += [keys_dir / "dev-tsa.key", keys_dir / "dev-tsa.crt"]
    if missing("dev-idp.key"):
        pki.save_private_key(pki.generate_key("rsa"), keys_dir / "dev-idp.key")
        written.append(keys_dir / "dev-idp.key")
    return written


def load_development_ca(keys_dir: Path) -> pki.Issued:
    """The development CA, for issuing demo agencies' certificates."""
    key_path, cert_path = keys_dir / "ca.key", keys_dir / "ca.crt"
    if not key_path.is_file():
        raise FileNotFoundError(f"{key_path} is missing: run `gateway keys init` first")
    return pki.Issued(pki.load_private_key(key_path), pki.load_certificates(cert_path)[0])
