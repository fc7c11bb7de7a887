"""Test helpers: development PKI for a few agencies, a client that speaks the gateway's protocol,
and database snapshots for "nothing changed but the audit entry" assertions."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import sqlalchemy as sa

from gateway.documents.signing import sign_edxml
from gateway.keys import DevStatusUrls
from gateway.store.db import Database
from gateway.store.tables import metadata
from gateway.trust import pki
from gateway.trust.dev_pki import DevRevocations

ROOT = Path(__file__).resolve().parents[1]
# Everything the suite reads lives in the repository, so a fresh clone runs it: the edXML samples are
# the ones in examples/, the public attack and interop vectors are in tests/vectors/ with their licences.
SAMPLES = ROOT / "examples"
VECTORS = ROOT / "tests" / "vectors"
PUBLIC_URL = "http://gateway.test"
TOKEN_ENDPOINT = PUBLIC_URL + "/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

HCM = "000.00.00.H29"
Q4 = "000.00.04.H29"
NOIVU = "000.00.31.H29"
Q11 = "000.00.11.H29"
TAX = "000.11.18.G12"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@dataclass
class AgencyKeys:
    code: str
    signing: pki.Issued
    client_key: pki.SigningKey

    def sign(self, data: bytes) -> bytes:
        return sign_edxml(data, self.signing.key, [self.signing.cert])

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.code,
            "sub": self.code,
            "aud": TOKEN_ENDPOINT,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.client_key, algorithm="ES256")


@dataclass
class Pki:
    keys_dir: Path
    ca: pki.Issued
    status: DevStatusUrls
    agencies: dict[str, AgencyKeys] = field(default_factory=dict)

    def issue(self, code: str, name: str = "Test agency", **options: Any) -> pki.Issued:
        """A signing certificate from the development CA naming the suite's status server."""
        options.setdefault("ocsp_url", self.status.ocsp)
        options.setdefault("crl_url", self.status.crl)
        return pki.issue_signing_certificate(self.ca, name, code, **options)

    @property
    def revocations(self) -> DevRevocations:
        return DevRevocations(self.keys_dir / "dev-revocations.json")


# Counters of attempts, not records of documents: a refused submission still counts against its
# agency's rate limit, or bad input would be a way around the limit.
COUNTERS = frozenset({"rate_limits"})


def audit_entries_of(svc: Any, event: str) -> list[dict[str, Any]]:
    """The log's entries of one event, oldest first, as JSON."""
    import json

    from gateway.store.tables import audit_entries

    with svc.db.read() as conn:
        rows = conn.execute(
            sa.select(audit_entries.c.body).where(audit_entries.c.event == event).order_by(audit_entries.c.idx)
        ).scalars()
        return [json.loads(bytes(b)) for b in rows]


def summarise_refusals(svc: Any) -> int:
    """Write the unauthenticated refusals counted so far as their summary entries (the background tick's job)."""
    return int(svc.refusals.flush(svc.db, svc.audit))


def snapshot(db: Database) -> dict[str, int]:
    """Row counts of every table: what a refusal must leave unchanged (but for the audit log)."""
    with db.read() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
            if t.name not in COUNTERS
        }


def reset_database(db: Database) -> None:
    """Empty every table between tests.  TRUNCATE, because the audit tables refuse DELETE (by design),
    with triggers off for this transaction (the superuser's replica mode), since they refuse TRUNCATE too."""
    with db.write() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(sa.insert(metadata.tables["audit_head"]).values(id=1, size=0, last_time_us=0))
        conn.execute(sa.insert(metadata.tables["registry_generation"]).values(id=1, generation=0))


class GatewayClient:
    """An agency's departmental system talking to the gateway through Flask's test client."""

    def __init__(self, client: Any, keys: AgencyKeys) -> None:
        self.client = client
        self.keys = keys
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            response = self.client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.keys.assertion(),
                },
            )
            assert response.status_code == 200, response.get_json()
            self._token = response.get_json()["access_token"]
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def submit(self, data: bytes, path: str = "/v1/documents") -> Any:
        return self.client.post(path, data=data, headers={**self.headers(), "Content-Type": "application/xml"})

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers())

    def post(self, path: str) -> Any:
        return self.client.post(path, headers=self.headers())


def status_message(original_document_id: str, original_sender: str, from_code: str, code: str) -> bytes:
    """An unsigned status message (the shape of the status-03 sample) about any document."""
    data = sample("status-03.edxml").decode()
    data = data.replace(
        "<edXML:OrganId>000.00.04.H29</edXML:OrganId>", f"<edXML:OrganId>{from_code}</edXML:OrganId>", 1
    )
    data = data.replace(
        "<edXML:OrganId>000.00.00.H29</edXML:OrganId>", f"<edXML:OrganId>{original_sender}</edXML:OrganId>", 1
    )
    data = data.replace("000.00.00.H29,2020/03/05,1024/UBND-VX", original_document_id)
    data = data.replace("<edXML:StatusCode>03</edXML:StatusCode>", f"<edXML:StatusCode>{code}</edXML:StatusCode>")
    return data.encode()


def authorization_request(
    client_id: str, redirect_uri: str, state: str = "s", nonce: str = "n"
) -> tuple[str, dict[str, str]]:
    """A PKCE code verifier and the matching authorization-request parameters (S256)."""
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


DEMO_AUDITOR_ID = "031085054321"  # Lê Minh Châu, the demo auditor


def sign_in_workbench(client: Any, svc: Any, personal_id: str = DEMO_AUDITOR_ID) -> str:
    """Give a Flask test client a server-side workbench session, as the login callback does; its CSRF token."""
    from gateway.identity.personal_id import hashed
    from gateway.identity.workbench_sessions import WORKBENCH_COOKIE

    actor = "citizen:" + hashed(personal_id, svc.keys.pepper)
    token, started = svc.sessions.start(actor, "Lê Minh Châu (0310********21)", None)
    client.set_cookie(WORKBENCH_COOKIE, token, path="/audit")
    return str(started.csrf)
