"""The agency registry: codes, names, signing certificates, client keys, adapters and permissions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from adapters import AdapterSettingsError, Deployment, UnknownAdapter, get_adapter_class
from gateway.audit import AuditEvent, AuditLog
from gateway.documents.identifiers import agency_code_form
from gateway.policy import Refusal
from gateway.routing.names import name_problem
from gateway.store.helpers import as_utc
from gateway.store.tables import agencies, agency_certificates, registry_generation
from gateway.trust import pki
from gateway.trust.chain import TrustStore

# An agency outside the city, reached through the national document axis: it never logs in here
# (it has no client key); its documents arrive through the axis receiver (gateway.vxp.receiver).
AXIS_ADAPTER = "vxp"


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    organization_in_charge: str
    enabled: bool
    client_public_key: str
    adapter: str
    adapter_settings: dict[str, Any]
    may_send_to: tuple[str, ...]
    certificates: tuple[dict[str, Any], ...] = field(default=())
    previous_client_public_key: str | None = None
    previous_client_key_until: datetime | None = None

    def client_keys(self, now: datetime) -> list[str]:
        """PEM client keys that authenticate at ``now``: the current one, and a rotated-out one in its overlap."""
        keys = [self.client_public_key] if self.client_public_key else []  # none: reached through the axis only
        if self.previous_client_public_key and self.previous_client_key_until and now < self.previous_client_key_until:
            keys.append(self.previous_client_public_key)
        return keys

    def public_view(self) -> dict[str, Any]:
        """What operators see: no private material exists here, but keep the shape explicit."""
        return {
            "code": self.code,
            "form": agency_code_form(self.code),
            "name": self.name,
            "organization_in_charge": self.organization_in_charge,
            "enabled": self.enabled,
            "adapter": self.adapter,
            "adapter_settings": self.adapter_settings,
            "may_send_to": list(self.may_send_to),
            "client_key_id": pki.key_id(pki.load_public_key(self.client_public_key))
            if self.client_public_key
            else None,
            "certificates": list(self.certificates),
        }


@dataclass(frozen=True)
class NewAgency:
    code: str
    name: str
    client_public_key_pem: str
    certificates: Sequence[x509.Certificate]
    organization_in_charge: str = ""
    adapter: str = "inbox"
    adapter_settings: dict[str, Any] = field(default_factory=dict)
    may_send_to: tuple[str, ...] = ("*",)


class AgencyRegistry:
    def __init__(self, audit: AuditLog, deployment: Deployment) -> None:
        self._deployment = deployment
        self._audit = audit
        self._parsed: dict[str, x509.Certificate] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever this process changes the registry (before the change commits)."""
        self._listeners.append(listener)

    def _changed(self, conn: Connection) -> None:
        """Every write below ends here: the generation moves in the same transaction, caches hear of it."""
        conn.execute(
            sa.update(registry_generation)
            .where(registry_generation.c.id == 1)
            .values(generation=registry_generation.c.generation + 1)
        )
        for listener in self._listeners:
            listener()

    def add(self, conn: Connection, new: NewAgency, trust: TrustStore, *, actor: str = "operator") -> Agency:
        if agency_code_form(new.code) is None:
            raise Refusal(
                "agency-code-invalid",
                f"{new.code!r} is neither the QCVN 102:2016 form (000.00.00.H29) nor the "
                "Decision 20/2020 form (H55.242)",
            )
        if (problem := name_problem(new.name)) is not None:
            raise Refusal("invalid-request", f"{problem} (agency {new.code})")
        if self.get(conn, new.code) is not None:
            raise Refusal("agency-exists", f"agency {new.code} is already registered; use `gateway agency show`")
        signers, intermediates = split_chain(new.certificates)
        if not signers:
            raise Refusal("certificate-missing", "register at least one signing certificate for the agency")
        if new.client_public_key_pem or new.adapter != AXIS_ADAPTER:
            try:
                pki.load_public_key(new.client_public_key_pem)
            except ValueError as exc:
                raise Refusal("client-key-invalid", f"client public key cannot be read: {exc}") from None
        _check_adapter(new.adapter, new.adapter_settings, self._deployment)
        for cert in signers:
            trust.verify(cert, intermediates)
            owner = conn.execute(
                sa.select(agency_certificates.c.agency_code).where(
                    agency_certificates.c.fingerprint == pki.fingerprint(cert)
                )
            ).scalar_one_or_none()
            if owner is not None:  # one signing certificate names one agency: else whose document is it?
                raise Refusal(
                    "certificate-exists",
                    f"certificate {pki.fingerprint(cert)[:16]}… is registered to {owner}; each agency signs "
                    "with its own (development keys: `gateway keys agency CODE`)",
                )
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(agencies).values(
                code=new.code,
                name=new.name,
                organization_in_charge=new.organization_in_charge,
                enabled=True,
                client_public_key=new.client_public_key_pem,
                adapter=new.adapter,
                adapter_settings=new.adapter_settings,
                may_send_to=list(new.may_send_to),
                created_at=now,
                updated_at=now,
            )
        )
        for cert in signers:
            self._insert_certificate(conn, new.code, cert, now)
        self._changed(conn)
        self._audit.append(conn, AuditEvent(event="agency.registered", outcome="ok", actor=actor, sender=new.code))
        agency = self.get(conn, new.code)
        assert agency is not None
        return agency

    def add_certificate(
        self,
        conn: Connection,
        code: str,
        cert: x509.Certificate,
        trust: TrustStore,
        *,
        intermediates: Sequence[x509.Certificate] = (),
        actor: str = "operator",
    ) -> None:
        if self.get(conn, code) is None:
            raise Refusal("unknown-agency", f"agency {code} is not registered; see `gateway agency list`")
        trust.verify(cert, intermediates)
        fp = pki.fingerprint(cert)
        owner = conn.execute(
            sa.select(agency_certificates.c.agency_code, agency_certificates.c.removed_at).where(
                agency_certificates.c.fingerprint == fp
            )
        ).one_or_none()
        if owner is not None:
            if owner.agency_code != code:
                raise Refusal("certificate-exists", f"certificate {fp[:16]}… is registered to {owner.agency_code}")
            if owner.removed_at is None:
                raise Refusal("certificate-exists", f"certificate {fp[:16]}… is already registered to {code}")
            conn.execute(
                sa.update(agency_certificates)
                .where(agency_certificates.c.fingerprint == fp)
                .values(removed_at=None, added_at=datetime.now(UTC))
            )
        else:
            self._insert_certificate(conn, code, cert, datetime.now(UTC))
        self._changed(conn)
        self._audit.append(
            conn,
            AuditEvent(event="agency.certificate-added", outcome="ok", actor=actor, sender=code, reason=f"sha256 {fp}"),
        )

    def remove_certificate(self, conn: Connection, code: str, fp_prefix: str, *, actor: str = "operator") -> str:
        """Stop accepting signatures by one certificate (its row stays, so old evidence still names the owner).

        ``fp_prefix`` is the SHA-256 fingerprint or an unambiguous prefix of at least 8 hex digits."""
        prefix = fp_prefix.strip().lower().replace(":", "")
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise Refusal("invalid-request", "name the certificate by its SHA-256 fingerprint (at least 8 hex digits)")
        rows = conn.execute(
            sa.select(agency_certificates.c.fingerprint).where(
                agency_certificates.c.agency_code == code,
                agency_certificates.c.removed_at.is_(None),
                agency_certificates.c.fingerprint.startswith(prefix, autoescape=True),
            )
        ).all()
        if not rows:
            raise Refusal(
                "certificate-not-found",
                f"{code} has no registered certificate {prefix}…; see `gateway agency cert list {code}`",
            )
        if len(rows) > 1:
            raise Refusal("invalid-request", f"{prefix} matches {len(rows)} certificates; give more digits")
        fp = rows[0].fingerprint
        conn.execute(
            sa.update(agency_certificates)
            .where(agency_certificates.c.fingerprint == fp)
            .values(removed_at=datetime.now(UTC))
        )
        self._changed(conn)
        self._audit.append(
            conn,
            AuditEvent(
                event="agency.certificate-removed", outcome="ok", actor=actor, sender=code, reason=f"sha256 {fp}"
            ),
        )
        return str(fp)

    def certificate_record(self, conn: Connection, code: str, fp: str) -> Any:
        """The row of certificate ``fp`` if it is (or was) registered to ``code``, else None."""
        return conn.execute(
            sa.select(agency_certificates).where(
                agency_certificates.c.agency_code == code, agency_certificates.c.fingerprint == fp
            )
        ).one_or_none()

    def certificate_rows(self, conn: Connection, code: str) -> list[Any]:
        """Every certificate ever registered to ``code``, newest first, removed ones included."""
        if self.get(conn, code) is None:
            raise Refusal("unknown-agency", f"agency {code} is not registered; see `gateway agency list`")
        return list(
            conn.execute(
                sa.select(agency_certificates)
                .where(agency_certificates.c.agency_code == code)
                .order_by(agency_certificates.c.added_at.desc(), agency_certificates.c.fingerprint)
            ).all()
        )

    def rotate_client_key(
        self, conn: Connection, code: str, public_key_pem: str, overlap: timedelta, *, actor: str = "operator"
    ) -> Agency:
        """Register a new client key; the old one keeps authenticating for ``overlap``, then stops."""
        agency = self.get(conn, code)
        if agency is None:
            raise Refusal("unknown-agency", f"agency {code} is not registered; see `gateway agency list`")
        try:
            new_id = pki.key_id(pki.load_public_key(public_key_pem))
        except ValueError as exc:
            raise Refusal("client-key-invalid", f"client public key cannot be read: {exc}") from None
        if new_id == _key_id(agency.client_public_key):
            raise Refusal("client-key-invalid", "that is already the agency's client key")
        now = datetime.now(UTC)
        conn.execute(
            sa.update(agencies)
            .where(agencies.c.code == code)
            .values(
                client_public_key=public_key_pem,
                previous_client_public_key=agency.client_public_key,
                previous_client_key_until=now + overlap,
                updated_at=now,
            )
        )
        self._changed(conn)
        self._audit.append(
            conn,
            AuditEvent(
                event="agency.client-key-rotated",
                outcome="ok",
                actor=actor,
                sender=code,
                reason=f"new key {new_id}; the previous one is accepted until {(now + overlap).isoformat()}",
            ),
        )
        rotated = self.get(conn, code)
        assert rotated is not None
        return rotated

    def _insert_certificate(self, conn: Connection, code: str, cert: x509.Certificate, now: datetime) -> None:
        conn.execute(
            sa.insert(agency_certificates).values(
                fingerprint=pki.fingerprint(cert),
                agency_code=code,
                pem=pki.cert_pem(cert),
                subject=cert.subject.rfc4514_string(),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                added_at=now,
            )
        )

    def set_enabled(self, conn: Connection, code: str, enabled: bool, *, actor: str = "operator") -> Agency:
        result = conn.execute(
            sa.update(agencies).where(agencies.c.code == code).values(enabled=enabled, updated_at=datetime.now(UTC))
        )
        if result.rowcount == 0:
            raise Refusal("unknown-agency", f"agency {code} is not registered; see `gateway agency list`")
        self._changed(conn)
        event = "agency.enabled" if enabled else "agency.disabled"
        self._audit.append(conn, AuditEvent(event=event, outcome="ok", actor=actor, sender=code))
        agency = self.get(conn, code)
        assert agency is not None
        return agency

    def set_adapter(
        self, conn: Connection, code: str, adapter: str, settings: dict[str, Any], *, actor: str = "operator"
    ) -> Agency:
        """Change how an agency receives; routes not yet delivered go the new way too."""
        _check_adapter(adapter, settings, self._deployment)
        result = conn.execute(
            sa.update(agencies)
            .where(agencies.c.code == code)
            .values(adapter=adapter, adapter_settings=settings, updated_at=datetime.now(UTC))
        )
        if result.rowcount == 0:
            raise Refusal("unknown-agency", f"agency {code} is not registered; see `gateway agency list`")
        self._changed(conn)
        self._audit.append(
            conn,
            AuditEvent(event="agency.adapter-changed", outcome="ok", actor=actor, sender=code, reason=adapter),
        )
        agency = self.get(conn, code)
        assert agency is not None
        return agency

    def get(self, conn: Connection, code: str) -> Agency | None:
        row = conn.execute(sa.select(agencies).where(agencies.c.code == code)).one_or_none()
        if row is None:
            return None
        certs = conn.execute(
            sa.select(agency_certificates)
            .where(agency_certificates.c.agency_code == code, agency_certificates.c.removed_at.is_(None))
            .order_by(agency_certificates.c.added_at.desc())
        ).all()
        return _agency(row, certs)

    def all(self, conn: Connection) -> list[Agency]:
        rows = conn.execute(sa.select(agencies).order_by(agencies.c.code)).all()
        return [_agency(row, ()) for row in rows]

    def signing_certificates(
        self, conn: Connection, code: str, *, at: datetime | None = None
    ) -> list[x509.Certificate]:
        """The agency's certificates that may sign now: not removed, not expired, newest first."""
        now = at or datetime.now(UTC)
        rows = conn.execute(
            sa.select(agency_certificates.c.fingerprint)
            .where(
                agency_certificates.c.agency_code == code,
                agency_certificates.c.removed_at.is_(None),
                agency_certificates.c.not_after > now,
                agency_certificates.c.not_before <= now,
            )
            .order_by(agency_certificates.c.added_at.desc(), agency_certificates.c.not_after.desc())
        ).all()
        parsed = self.parsed_certificates(conn, [row.fingerprint for row in rows])
        return [parsed[row.fingerprint] for row in rows]

    def parsed_certificates(self, conn: Connection, fingerprints: Sequence[str]) -> dict[str, x509.Certificate]:
        """Registered certificates by fingerprint, each parsed once per process (a fingerprint names one)."""
        missing = [fp for fp in fingerprints if fp not in self._parsed]
        if missing:
            rows = conn.execute(
                sa.select(agency_certificates.c.fingerprint, agency_certificates.c.pem).where(
                    agency_certificates.c.fingerprint.in_(missing)
                )
            ).all()
            for row in rows:
                self._parsed[row.fingerprint] = x509.load_pem_x509_certificate(row.pem.encode())
        return {fp: self._parsed[fp] for fp in fingerprints}

    def expiring_certificates(self, conn: Connection, within: timedelta) -> list[Any]:
        """Registered certificates (not removed) of enabled agencies that expire within ``within``."""
        now = datetime.now(UTC)
        return list(
            conn.execute(
                sa.select(agency_certificates)
                .join(agencies, agencies.c.code == agency_certificates.c.agency_code)
                .where(
                    agencies.c.enabled.is_(True),
                    agency_certificates.c.removed_at.is_(None),
                    agency_certificates.c.not_after > now,
                    agency_certificates.c.not_after <= now + within,
                )
                .order_by(agency_certificates.c.not_after)
            ).all()
        )

    def lookup(self, conn: Connection, codes: Sequence[str]) -> dict[str, Agency]:
        """The registered agencies among ``codes`` (enabled or not), without their certificates."""
        rows = conn.execute(sa.select(agencies).where(agencies.c.code.in_(list(codes)))).all()
        return {row.code: _agency(row, ()) for row in rows}


def split_chain(certificates: Sequence[x509.Certificate]) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """Signing certificates and the CA certificates given with them (a licensed CA under the national root):
    the CAs help build the path at registration; only the end-entity ones may sign."""
    signers: list[x509.Certificate] = []
    cas: list[x509.Certificate] = []
    for cert in certificates:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        (cas if is_ca else signers).append(cert)
    return signers, cas


def _check_adapter(adapter: str, settings: dict[str, Any], deployment: Deployment) -> None:
    try:
        get_adapter_class(adapter).validate_settings(settings, deployment)
    except (UnknownAdapter, AdapterSettingsError) as exc:
        raise Refusal("adapter-invalid", str(exc)) from None


def _agency(row: Any, certs: Sequence[Any]) -> Agency:
    return Agency(
        code=row.code,
        name=row.name,
        organization_in_charge=row.organization_in_charge,
        enabled=bool(row.enabled),
        client_public_key=row.client_public_key,
        adapter=row.adapter,
        adapter_settings=dict(row.adapter_settings),
        may_send_to=tuple(row.may_send_to),
        previous_client_public_key=row.previous_client_public_key,
        previous_client_key_until=as_utc(row.previous_client_key_until) if row.previous_client_key_until else None,
        certificates=tuple(
            {
                "sha256": c.fingerprint,
                "subject": c.subject,
                "not_before": c.not_before.isoformat(),
                "not_after": c.not_after.isoformat(),
            }
            for c in certs
        ),
    )


def _key_id(pem: str) -> str | None:
    return pki.key_id(pki.load_public_key(pem)) if pem else None
