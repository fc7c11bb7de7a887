"""``gateway agency …``: register agencies, their certificates, client keys, adapters and permissions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from gateway.cli_support import cli_services, emit, fail, json_option, table
from gateway.policy import Refusal
from gateway.store.helpers import as_utc
from gateway.trust import pki


@click.group()
def agency() -> None:
    """Register and manage agencies."""


@agency.command("add")
@click.argument("code")
@click.option("--name", required=True, help="Official name, e.g. 'Ủy ban nhân dân Quận 4'.")
@click.option(
    "--cert",
    "certs",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Signing certificate (PEM); repeat for several.",
)
@click.option(
    "--client-key",
    type=click.Path(exists=True, path_type=Path),
    help="The agency's client public key (PEM) for private_key_jwt; none for an agency reached through the "
    "national axis (--adapter vxp).",
)
@click.option("--organization-in-charge", default="", help="Parent organisation (OrganizationInCharge).")
@click.option("--adapter", default="inbox", show_default=True, help="Delivery adapter.")
@click.option("--adapter-setting", "adapter_settings", multiple=True, help="KEY=VALUE, repeatable.")
@click.option(
    "--may-send-to",
    "may_send_to",
    multiple=True,
    default=("*",),
    show_default=True,
    help="Agency code or prefix ending in * the agency may send to; repeatable.",
)
@json_option
def agency_add(
    code: str,
    name: str,
    certs: tuple[Path, ...],
    client_key: Path | None,
    organization_in_charge: str,
    adapter: str,
    adapter_settings: tuple[str, ...],
    may_send_to: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register an agency: its code, names, signing certificates, client key, adapter and permissions."""
    from gateway.routing.registry import NewAgency

    settings = _adapter_settings(adapter_settings)
    if client_key is None and adapter != "vxp":
        fail(
            "--client-key FILE is needed: the agency's systems log in with it. Only an agency outside the city, "
            "reached through the national axis (--adapter vxp), is registered without one"
        )
    try:
        certificates = [c for path in certs for c in pki.load_certificates(path)]
    except ValueError as exc:
        fail(f"cannot read certificate: {exc}")
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                added = svc.registry.add(
                    conn,
                    NewAgency(
                        code=code,
                        name=name,
                        client_public_key_pem=client_key.read_text() if client_key else "",
                        certificates=certificates,
                        organization_in_charge=organization_in_charge,
                        adapter=adapter,
                        adapter_settings=settings,
                        may_send_to=may_send_to,
                    ),
                    svc.keys.trust,
                )
        except Refusal as refusal:
            fail(refusal.reason)
        emit(added.public_view(), as_json, lambda v: f"registered {v['code']} ({v['name']})")


def _adapter_settings(items: Sequence[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--adapter-setting {item!r}: write KEY=VALUE")
        settings[key] = int(value) if value.isdigit() else {"true": True, "false": False}.get(value, value)
    return settings


@agency.command("set-adapter")
@click.argument("code")
@click.option("--adapter", required=True, help="inbox, http, filesystem or redis-stream.")
@click.option("--adapter-setting", "adapter_settings", multiple=True, help="KEY=VALUE, repeatable.")
def agency_set_adapter(code: str, adapter: str, adapter_settings: tuple[str, ...]) -> None:
    """Change how an agency receives documents (e.g. --adapter http --adapter-setting url=https://…)."""
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                svc.registry.set_adapter(conn, code, adapter, _adapter_settings(adapter_settings))
        except Refusal as refusal:
            fail(refusal.reason)
    click.echo(f"{code} now receives through {adapter}")


@agency.command("list")
@json_option
def agency_list(as_json: bool) -> None:
    """All registered agencies, with signing certificates that expire soon (GATEWAY_CERTIFICATE_EXPIRY_WARNING_DAYS)."""
    with cli_services() as svc, svc.db.read() as conn:
        window = timedelta(days=svc.config.certificate_expiry_warning_days)
        expiring: dict[str, list[str]] = {}
        for row in svc.registry.expiring_certificates(conn, window):
            expiring.setdefault(row.agency_code, []).append(f"{row.fingerprint[:12]}… {as_utc(row.not_after):%Y-%m-%d}")
        rows = [
            {
                "code": a.code,
                "name": a.name,
                "enabled": a.enabled,
                "adapter": a.adapter,
                "may_send_to": ",".join(a.may_send_to),
                "expiring_certificates": ", ".join(expiring.get(a.code, [])),
            }
            for a in svc.registry.all(conn)
        ]
    emit(
        rows,
        as_json,
        lambda r: table(r, ["code", "name", "enabled", "adapter", "may_send_to", "expiring_certificates"]),
    )


# --- certificates and client keys -----------------------------------------------------------------


@agency.group("cert")
def agency_cert() -> None:
    """An agency's document-signing certificates: add, list (with status), remove."""


@agency_cert.command("add")
@click.argument("code")
@click.option("--cert", "cert_file", required=True, type=click.Path(exists=True, path_type=Path), help="PEM file.")
@json_option
def agency_cert_add(code: str, cert_file: Path, as_json: bool) -> None:
    """Register another signing certificate (a renewal): documents signed with either verify."""
    from gateway.routing.registry import split_chain

    try:
        certificates, intermediates = split_chain(pki.load_certificates(cert_file))
    except ValueError as exc:
        fail(f"cannot read certificate {cert_file}: {exc}")
    if not certificates:
        fail(f"{cert_file} holds no end-entity certificate (CA certificates there only help build the path)")
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                for cert in certificates:
                    svc.registry.add_certificate(conn, code, cert, svc.keys.trust, intermediates=intermediates)
        except Refusal as refusal:
            fail(refusal.reason)
    added = [
        {"agency": code, "sha256": pki.fingerprint(c), "subject": c.subject.rfc4514_string()} for c in certificates
    ]
    emit(added, as_json, lambda r: "\n".join(f"added {a['sha256']} ({a['subject']}) to {code}" for a in r))


def _certificate_status(svc: Any, row: Any, now: datetime, window: timedelta) -> str:
    if row.removed_at is not None:
        return f"removed {as_utc(row.removed_at):%Y-%m-%d}"
    if as_utc(row.not_after) <= now:
        return "expired"
    if as_utc(row.not_before) > now:
        return "not yet valid"
    cert = x509.load_pem_x509_certificate(row.pem.encode())
    try:
        chain = svc.keys.trust.verify(cert)
        decision = svc.revocation.check(chain.leaf, chain.issuer)
    except Refusal as refusal:  # the reason says when and why (revocation time and reason): keep it whole
        return (
            f"{refusal.code}: {refusal.reason.split(' was ', 1)[-1] if ' was ' in refusal.reason else refusal.reason}"
        )
    found = decision.status
    state = f"{found.state} ({found.source})" if found else "status unknown (accepted, flagged)"
    left = as_utc(row.not_after) - now
    return state + (f", expires in {left.days} days" if left <= window else "")


@agency_cert.command("list")
@click.argument("code")
@json_option
def agency_cert_list(code: str, as_json: bool) -> None:
    """Every certificate the agency has had, newest first: fingerprint, subject, validity, status now."""
    now = datetime.now(UTC)
    with cli_services() as svc:
        window = timedelta(days=svc.config.certificate_expiry_warning_days)
        try:
            with svc.db.read() as conn:
                found = svc.registry.certificate_rows(conn, code)
        except Refusal as refusal:
            fail(refusal.reason)
        rows = [
            {
                "sha256": r.fingerprint,
                "subject": r.subject,
                "not_before": as_utc(r.not_before).isoformat(timespec="seconds"),
                "not_after": as_utc(r.not_after).isoformat(timespec="seconds"),
                "status": _certificate_status(svc, r, now, window),
            }
            for r in found
        ]
    emit(rows, as_json, lambda r: table(r, ["sha256", "subject", "not_before", "not_after", "status"]))


@agency_cert.command("remove")
@click.argument("code")
@click.argument("fingerprint")
def agency_cert_remove(code: str, fingerprint: str) -> None:
    """Stop accepting signatures by one certificate (SHA-256 fingerprint, or 8+ leading hex digits)."""
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                removed = svc.registry.remove_certificate(conn, code, fingerprint)
        except Refusal as refusal:
            fail(refusal.reason)
    click.echo(f"removed {removed} from {code}: documents signed with it are refused from now on")


@agency.group("client-key")
def agency_client_key() -> None:
    """The key an agency's system authenticates with (private_key_jwt)."""


@agency_client_key.command("rotate")
@click.argument("code")
@click.option("--client-key", required=True, type=click.Path(exists=True, path_type=Path), help="New public key (PEM).")
@click.option(
    "--overlap-hours",
    default=24,
    show_default=True,
    type=click.IntRange(0, 24 * 90),
    help="How long the old key keeps authenticating, so the agency can switch without downtime.",
)
def agency_client_key_rotate(code: str, client_key: Path, overlap_hours: int) -> None:
    """Register a new client key; the old one still authenticates during the overlap."""
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                rotated = svc.registry.rotate_client_key(
                    conn, code, client_key.read_text(), timedelta(hours=overlap_hours)
                )
        except Refusal as refusal:
            fail(refusal.reason)
    until = rotated.previous_client_key_until
    click.echo(
        f"{code} now authenticates with key {rotated.public_view()['client_key_id']}; "
        f"the previous key is accepted until {until:%Y-%m-%d %H:%M} UTC"
        if until
        else f"{code}: key rotated"
    )


@agency.command("show")
@click.argument("code")
@json_option
def agency_show(code: str, as_json: bool) -> None:
    """One agency with its certificates."""
    with cli_services() as svc, svc.db.read() as conn:
        found = svc.registry.get(conn, code)
    if found is None:
        fail(f"agency {code} is not registered; see `gateway agency list`")
        return
    view = found.public_view()

    def render(v: dict[str, Any]) -> str:
        lines = [
            f"{k}: {v[k]}"
            for k in (
                "code",
                "form",
                "name",
                "organization_in_charge",
                "enabled",
                "adapter",
                "may_send_to",
                "client_key_id",
            )
        ]
        lines.append("certificates:")
        lines += [f"  sha256={c['sha256']}  {c['subject']}  until {c['not_after']}" for c in v["certificates"]]
        return "\n".join(lines)

    emit(view, as_json, render)


def _set_enabled(code: str, enabled: bool) -> None:
    with cli_services() as svc:
        try:
            with svc.db.write() as conn:
                svc.registry.set_enabled(conn, code, enabled)
        except Refusal as refusal:
            fail(refusal.reason)
    click.echo(f"{code} {'enabled' if enabled else 'disabled'}")


@agency.command("disable")
@click.argument("code")
def agency_disable(code: str) -> None:
    """Stop an agency from authenticating, sending and receiving (its history stays)."""
    _set_enabled(code, False)


@agency.command("enable")
@click.argument("code")
def agency_enable(code: str) -> None:
    """Re-enable a disabled agency."""
    _set_enabled(code, True)


# --- documents ------------------------------------------------------------------------------------
