"""The ``gateway`` command: set up a deployment, register agencies, run the server, sign and verify.

Output is a readable table by default and JSON with ``--json``; errors say what to do next and
exit non-zero.  Private keys are never printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway import pki
from gateway.cli_support import cli_services, emit, fail, json_option, load_config, table
from gateway.config import Config
from gateway.delivery.commands import deliveries, worker
from gateway.policy import Refusal


@click.group()
@click.version_option(package_name="interconnect-gateway")
def main() -> None:
    """Interconnect gateway for signed edXML e-documents between government agencies."""


# --- deployment -----------------------------------------------------------------------------------


@main.command()
@click.option("--demo", is_flag=True, help="Also create development keys and register the demo agencies.")
def init(demo: bool) -> None:
    """Prepare a deployment: check the configuration, migrate the database, and (with --demo) add demo data."""
    from gateway.keys import init_development_keys
    from gateway.store import upgrade

    config = load_config()
    if demo and config.missing_key_files():
        written = init_development_keys(config.keys_dir)
        click.echo(f"development keys written to {config.keys_dir}/: {', '.join(p.name for p in written)}")
    missing = config.missing_key_files()
    if missing:
        fail("\n".join(missing))
    click.echo(f"migrating {_redact(config.database_url)} …")
    upgrade(config.database_url)
    if demo:
        _register_demo(config)
    click.echo("ready: start the server with `gateway serve`")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_demo(config: Config) -> None:
    from gateway.demo import DEMO_AGENCIES, make_agency_keys, register_demo_agency, register_demo_portal
    from gateway.services import DEMO_PORTAL

    with cli_services() as svc:
        for code, name, parent in DEMO_AGENCIES:
            files = make_agency_keys(config.keys_dir, code, name)
            certificates = pki.load_certificates(files.signing_cert)
            if register_demo_agency(svc, code, name, parent, files.client_public_key.read_text(), certificates):
                click.echo(f"  demo agency {code}  {name}  (keys in {files.directory}/)")
        if register_demo_portal(svc, *DEMO_PORTAL):
            click.echo(f"  citizen portal {DEMO_PORTAL[0]}  {DEMO_PORTAL[1]}  (dossiers are signed with the seal key)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option(
    "--delivery-workers",
    default=1,
    show_default=True,
    type=click.IntRange(0, 64),
    help="`gateway worker` processes to run alongside (0 when workers run elsewhere).",
)
def serve(host: str, port: int, workers: int, delivery_workers: int) -> None:
    """Run the HTTP server (gunicorn) and delivery workers with the configuration from the environment."""
    config = load_config()
    missing = config.missing_key_files()
    if missing:
        fail("\n".join(missing))
    env = dict(os.environ)
    if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "gateway.wsgi:app",
        "--config",
        "python:gateway.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
    ]
    click.echo(
        f"serving on http://{host}:{port} with {workers} workers and {delivery_workers} delivery worker(s) "
        "(Ctrl-C to stop)"
    )
    if delivery_workers == 0:
        os.execve(sys.executable, args, env)  # noqa: S606 - replaces this process with gunicorn
    children = [
        subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], env=env) for _ in range(delivery_workers)
    ]
    server = subprocess.Popen(args, env=env)  # noqa: S603 - our own interpreter and gunicorn

    def forward(signum: int, _frame: object) -> None:
        for child in (server, *children):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = server.wait()
    for child in children:
        child.terminate()
    for child in children:
        child.wait(timeout=30)
    sys.exit(code)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from gateway.store import upgrade

    config = load_config()
    upgrade(config.database_url)
    click.echo("database is at the latest schema")


# --- keys -----------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Development keys (never for production)."""


@keys.command("init")
@click.option("--force", is_flag=True, help="Replace existing development keys.")
def keys_init(force: bool) -> None:
    """Create a development CA, the gateway's seal key and certificate, and its token key in keys/."""
    from gateway.keys import init_development_keys

    config = load_config()
    try:
        written = init_development_keys(config.keys_dir, force=force)
    except FileExistsError as exc:
        fail(str(exc))
    for path in written:
        click.echo(f"wrote {path}")


@keys.command("agency")
@click.argument("code")
@click.option("--name", default="", help="Organisation name for the certificate subject.")
def keys_agency(code: str, name: str) -> None:
    """Issue development keys for an agency: signing key + certificate, client key (ES256)."""
    from gateway.demo import make_agency_keys
    from gateway.documents.identifiers import is_agency_code

    if not is_agency_code(code):
        fail(f"{code!r} is not an agency code (000.00.00.H29 or H55.242 form)")
    config = load_config()
    try:
        files = make_agency_keys(config.keys_dir, code, name or code)
    except FileNotFoundError as exc:
        fail(str(exc))
    for path in (files.signing_key, files.signing_cert, files.client_key, files.client_public_key):
        click.echo(f"{path}")


# --- agencies -------------------------------------------------------------------------------------


@main.group()
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


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(exists=True, path_type=Path), help="Signing key (PEM).")
@click.option("--cert", required=True, type=click.Path(exists=True, path_type=Path), help="Certificate (PEM).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--pss", is_flag=True, help="RSA-PSS instead of PKCS#1 v1.5 (RSA keys only).")
def sign(file: Path, key: Path, cert: Path, out: Path | None, pss: bool) -> None:
    """Sign an unsigned edXML document with the edXML signature profile."""
    from gateway.documents.signing import sign_edxml, signature_method_for

    signing_key = pki.load_private_key(key)
    try:
        signed = sign_edxml(
            file.read_bytes(),
            signing_key,
            pki.load_certificates(cert),
            method=signature_method_for(signing_key, pss=pss),
        )
    except (Refusal, ValueError) as exc:
        fail(f"{file}: {exc}")
    if out is None:
        sys.stdout.buffer.write(signed)
    else:
        out.write_bytes(signed)
        click.echo(f"signed {file} -> {out}", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--seal", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The gateway's seal for this document."
)
@click.option(
    "--trust",
    "trust_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Trust anchor certificate(s) (PEM); default: the configured anchors.",
)
@click.option(
    "--sender-cert",
    type=click.Path(exists=True, path_type=Path),
    help="Pin the sender's certificate (default: the one in the signature, if it chains to an anchor).",
)
@click.option(
    "--gateway-cert",
    type=click.Path(exists=True, path_type=Path),
    help="Pin the gateway's seal certificate (default: the one in the seal, if it chains to an anchor).",
)
@json_option
def verify(
    file: Path,
    seal: Path | None,
    trust_files: tuple[Path, ...],
    sender_cert: Path | None,
    gateway_cert: Path | None,
    as_json: bool,
) -> None:
    """Verify a signed edXML document (and its seal) offline: no database, no server."""
    from gateway.documents.offline import verify_offline

    if trust_files:
        anchors = [c for p in trust_files for c in pki.load_certificates(p)]
    else:
        config = load_config()
        anchors = [c for p in config.trust_anchor_paths if p.is_file() for c in pki.load_certificates(p)]
        if not anchors:
            fail("no trust anchors: pass --trust CA.pem or run `gateway keys init`")
    report = verify_offline(
        file.read_bytes(),
        anchors,
        seal=seal.read_bytes() if seal else None,
        sender_certs=pki.load_certificates(sender_cert) if sender_cert else None,
        gateway_certs=pki.load_certificates(gateway_cert) if gateway_cert else None,
    )
    emit(report, as_json, lambda r: "\n".join(f"{k}: {v}" for k, v in r.items()))
    if report["verdict"] != "valid":
        sys.exit(1)


@main.command("dev-idp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--audience", default=None, help="aud of the access tokens (default: GATEWAY_CITIZEN_AUDIENCE).")
def dev_idp(host: str, port: int, audience: str | None) -> None:
    """Run the development identity provider alone (never in production): OIDC, PKCE, test citizens."""
    from flask import Flask

    from gateway.identity.dev_idp import DevIdpSettings, dev_idp_blueprint
    from gateway.identity.state import SqlStateStore
    from gateway.store.db import Database

    config = load_config()
    if not config.dev_idp_key_path.is_file():
        fail(f"{config.dev_idp_key_path} is missing: run `gateway keys init`")
    key = pki.load_private_key(config.dev_idp_key_path)
    if not isinstance(key, rsa.RSAPrivateKey):
        fail(f"{config.dev_idp_key_path} must be an RSA key")
        return
    issuer = f"http://{host}:{port}/dev-idp"
    state = SqlStateStore(Database(f"sqlite:///{config.keys_dir / 'dev-idp-state.db'}"))
    from gateway.store import upgrade

    upgrade(f"sqlite:///{config.keys_dir / 'dev-idp-state.db'}")
    app = Flask("dev-idp")
    app.register_blueprint(dev_idp_blueprint(DevIdpSettings(issuer, key, audience or config.citizen_audience, state)))
    click.echo(
        f"development identity provider (NOT VNeID) at {issuer}; discovery: {issuer}/.well-known/openid-configuration"
    )
    click.echo(f'trust it with [[issuers]] issuer = "{issuer}", audiences = ["{audience or config.citizen_audience}"]')
    app.run(host=host, port=port)


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("vkey")
def audit_vkey() -> None:
    """Print the verifier key of the log's checkpoints (give it to auditors, agencies and citizens)."""
    from gateway.audit.checkpoint import NoteSigner
    from gateway.keys import load_ed25519_key

    config = load_config()
    if not config.audit_key_path.is_file():
        fail(f"{config.audit_key_path} is missing: run `gateway keys init`")
    click.echo(NoteSigner(config.audit_origin, load_ed25519_key(config.audit_key_path)).vkey)


def _verifier(vkey: str) -> Any:
    from gateway.audit.checkpoint import NoteVerifier

    text = Path(vkey).read_text().strip() if Path(vkey).is_file() else vkey
    try:
        return NoteVerifier.parse(text)
    except Refusal as refusal:
        fail(f"--vkey: {refusal.reason}")


@audit.command("verify-receipt")
@click.argument("receipt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", required=True, help="The log's verifier key (the string, or a file holding it).")
@json_option
def audit_verify_receipt(receipt: Path, vkey: str, as_json: bool) -> None:
    """Check a document's receipt offline: checkpoint signature, then every entry's inclusion proof."""
    from gateway.audit.receipt import verify_receipt

    try:
        data = json.loads(receipt.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{receipt} is not a JSON receipt: {exc}")
    report = verify_receipt(data, _verifier(vkey))
    emit(report, as_json, lambda r: "\n".join(f"{k}: {v}" for k, v in r.items()))
    if report["verdict"] != "valid":
        sys.exit(1)


@audit.command("export")
@click.option("--from", "first", type=int, default=0, show_default=True, help="First entry index.")
@click.option("--to", "last", type=int, default=None, help="End index (exclusive); default: the whole log.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def audit_export(first: int, last: int | None, out: Path) -> None:
    """Export entries [from, to) with their checkpoints and proofs as a bundle for `gateway audit verify`."""
    from gateway.audit.bundle import export_bundle

    with cli_services() as svc:
        svc.checkpoints.refresh(force=True)
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
            end = size if last is None else last
            if not 0 <= first < end <= size:
                fail(f"--from/--to must satisfy 0 <= from < to <= {size} (the log's size)")
            try:
                out.write_bytes(export_bundle(conn, svc.checkpoints, first, end))
            except Refusal as refusal:
                fail(refusal.reason)
    click.echo(f"wrote {out}")


@audit.command("verify")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", required=True, help="The log's verifier key (the string, or a file holding it).")
@json_option
def audit_verify(bundle: Path, vkey: str, as_json: bool) -> None:
    """Verify an exported bundle offline: signatures, roots from the raw entries, consistency, continuity."""
    from gateway.audit.bundle import verify_bundle

    def progress(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} entries", nl=False, err=True)

    verdict = verify_bundle(bundle, _verifier(vkey), progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        click.echo("", err=True)
    emit(verdict.as_dict(), as_json, lambda v: f"{v['verdict'].upper()}: {v['detail']}")
    if not verdict.valid:
        sys.exit(1)


# --- client helper --------------------------------------------------------------------------------


@main.group()
def client() -> None:
    """Helpers for departmental systems (and the README walk-through)."""


@client.command("assertion")
@click.option("--agency", "code", required=True, help="Your agency code (iss and sub).")
@click.option("--key", required=True, type=click.Path(exists=True, path_type=Path), help="Your client private key.")
@click.option("--audience", help="Token endpoint URL (default: GATEWAY_PUBLIC_URL/oauth/token).")
@click.option("--lifetime", default=60, show_default=True, type=int)
def client_assertion(code: str, key: Path, audience: str | None, lifetime: int) -> None:
    """Print a private_key_jwt client assertion (RFC 7523) to post to /oauth/token."""
    signing_key = pki.load_private_key(key)
    alg = "ES256" if isinstance(signing_key, ec.EllipticCurvePrivateKey) else "RS256"
    now = int(time.time())
    claims = {
        "iss": code,
        "sub": code,
        "aud": audience or load_config().token_endpoint,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    click.echo(jwt.encode(claims, signing_key, algorithm=alg))


main.add_command(worker)
main.add_command(deliveries)

if __name__ == "__main__":
    main()
