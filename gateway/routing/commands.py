"""``gateway agency …``: register agencies, their certificates, client keys, adapters and permissions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from gateway.cli_support import cli_services, emit, fail, json_option, table
from gateway.policy import Refusal
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
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The agency's client public key (PEM) for private_key_jwt.",
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
    client_key: Path,
    organization_in_charge: str,
    adapter: str,
    adapter_settings: tuple[str, ...],
    may_send_to: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register an agency: its code, names, signing certificates, client key, adapter and permissions."""
    from gateway.routing.registry import NewAgency

    settings = _adapter_settings(adapter_settings)
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
                        client_public_key_pem=client_key.read_text(),
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
        settings[key] = int(value) if value.isdigit() else value
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
    """All registered agencies."""
    with cli_services() as svc, svc.db.read() as conn:
        rows = [
            {
                "code": a.code,
                "name": a.name,
                "enabled": a.enabled,
                "adapter": a.adapter,
                "may_send_to": ",".join(a.may_send_to),
            }
            for a in svc.registry.all(conn)
        ]
    emit(rows, as_json, lambda r: table(r, ["code", "name", "enabled", "adapter", "may_send_to"]))


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
