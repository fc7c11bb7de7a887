"""Demo agencies for a first run: the agencies named in the edXML samples, with development keys.

Everything here is for development: keys are generated into ``keys/agencies/<code>/`` (git-ignored)
and certificates are issued by the development CA made by ``gateway keys init``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from gateway.keys import DevStatusUrls, load_development_ca
from gateway.routing.registry import NewAgency
from gateway.trust import pki

if TYPE_CHECKING:
    from gateway.services import Services

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


def make_agency_keys(keys_dir: Path, code: str, name: str, status: DevStatusUrls) -> AgencyKeyFiles:
    """An RSA-2048 document-signing key and certificate plus an EC P-256 client key (ES256 assertions)."""
    files = agency_key_files(keys_dir, code)
    if files.signing_key.exists():
        return files
    ca = load_development_ca(keys_dir)
    signing = pki.issue_signing_certificate(ca, name, code, ocsp_url=status.ocsp, crl_url=status.crl)
    client = pki.generate_key("ec")
    pki.save_private_key(signing.key, files.signing_key)
    pki.save_certificate(signing.cert, files.signing_cert)
    pki.save_private_key(client, files.client_key)
    files.client_public_key.write_text(pki.public_pem(client))
    return files


def register_demo_agency(
    svc: Services,
    code: str,
    name: str,
    parent: str,
    client_public_key_pem: str,
    certificates: Sequence[x509.Certificate],
    *,
    actor: str = "gateway init --demo",
) -> bool:
    """Register one demo agency unless it already exists; ``True`` when it was added."""
    with svc.db.write() as conn:
        if svc.registry.get(conn, code) is not None:
            return False
        svc.registry.add(
            conn,
            NewAgency(
                code=code,
                name=name,
                organization_in_charge=parent,
                client_public_key_pem=client_public_key_pem,
                certificates=certificates,
            ),
            svc.keys.trust,
            actor=actor,
        )
    return True


def register_demo_portal(svc: Services, code: str, name: str) -> bool:
    """The city's citizen portal, the sender of dossiers the gateway builds and signs with the portal key.

    Its client key is thrown away at once: nobody authenticates as the portal over /oauth/token.
    """
    return register_demo_agency(
        svc,
        code,
        name,
        "Ủy ban nhân dân Thành phố Hồ Chí Minh",
        pki.public_pem(pki.generate_key("ec")),
        list(svc.keys.portal_chain[:1]),
    )
