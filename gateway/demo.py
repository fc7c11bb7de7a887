"""Demo agencies for a first run: the agencies named in the edXML samples, with development keys.

Everything here is for development: keys are generated into ``keys/agencies/<code>/`` (git-ignored)
and certificates are issued by the development CA made by ``gateway keys init``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway import pki
from gateway.keys import load_development_ca

DEMO_AGENCIES: tuple[tuple[str, str, str], ...] = (
    ("000.00.00.H29", "Ủy ban nhân dân Thành phố Hồ Chí Minh", "Ủy ban nhân dân Thành phố"),
    ("000.00.04.H29", "Ủy ban nhân dân Quận 4", "Ủy ban nhân dân Thành phố Hồ Chí Minh"),
    ("000.00.31.H29", "Sở Nội vụ Thành phố Hồ Chí Minh", "Ủy ban nhân dân Thành phố Hồ Chí Minh"),
    ("000.00.11.H29", "Ủy ban nhân dân Quận 11", "Ủy ban nhân dân Thành phố Hồ Chí Minh"),
    ("000.11.18.G12", "Chi cục Thuế Quận 11", "Cục Thuế Thành phố Hồ Chí Minh"),
)


@dataclass(frozen=True)
class AgencyKeyFiles:
    directory: Path

    @property
    def signing_key(self) -> Path:
        return self.directory / "signing.key"

    @property
    def signing_cert(self) -> Path:
        return self.directory / "signing.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def client_public_key(self) -> Path:
        return self.directory / "client.pub"


def agency_key_files(keys_dir: Path, code: str) -> AgencyKeyFiles:
    return AgencyKeyFiles(keys_dir / "agencies" / code)


def make_agency_keys(keys_dir: Path, code: str, name: str) -> AgencyKeyFiles:
    """An RSA-2048 document-signing key and certificate plus an EC P-256 client key (ES256 assertions)."""
    files = agency_key_files(keys_dir, code)
    if files.signing_key.exists():
        return files
    ca = load_development_ca(keys_dir)
    signing = pki.issue_signing_certificate(ca, name, code)
    client = pki.generate_key("ec")
    pki.save_private_key(signing.key, files.signing_key)
    pki.save_certificate(signing.cert, files.signing_cert)
    pki.save_private_key(client, files.client_key)
    files.client_public_key.write_text(pki.public_pem(client))
    return files
