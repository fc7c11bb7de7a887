"""The ``gateway`` command: set up a deployment, register agencies, run the server, sign and verify.

Output is a readable table by default and JSON with ``--json``; errors say what to do next and
exit non-zero.  Private keys are never printed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.audit.commands import audit
from gateway.cli_support import cli_services, emit, fail, json_option, load_config, read_download, report_text
from gateway.config import Config
from gateway.delivery.commands import deliveries, worker
from gateway.policy import Refusal
from gateway.routing.commands import agency
from gateway.trust import pki
from gateway.vxp.commands import agency_sync_vxp, agency_vxp_credentials, vxp
from gateway.witness.commands import witness


@click.group()
@click.version_option(package_name="interconnect-gateway")
def main() -> None:
    """Interconnect gateway for signed edXML e-documents between government agencies."""


# --- deployment -----------------------------------------------------------------------------------


@main.command()
@click.option("--demo", is_flag=True, help="Also create development keys and register the demo agencies.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The port `gateway serve` will use: names the development PKI's URLs and a new log after it "
    "(unless GATEWAY_PUBLIC_URL is set). ./run.sh passes its --port here.",
)
def init(demo: bool, port: int | None) -> None:
    """Prepare a deployment: check the configuration, migrate the database, and (with --demo) add demo data."""
    from gateway import local_deployment
    from gateway.keys import DevStatusUrls, init_development_keys
    from gateway.store import upgrade

    config = load_config()
    if port is not None and not local_deployment.public_url_chosen(os.environ):
        config = dataclasses.replace(config, public_url=local_deployment.url_for_listener("127.0.0.1", port))
    _refuse_mixing_demo_and_production(demo)
    if demo and config.missing_key_files():
        written = init_development_keys(config.keys_dir, DevStatusUrls(config.public_url))
        click.echo(f"development keys written to {config.keys_dir}/: {', '.join(p.name for p in written)}")
    missing = config.missing_key_files()
    if missing:
        fail("\n".join(missing))
    click.echo(f"migrating {_redact(config.database_url)} …")
    new_database = not _has_audit_log(config.database_url)
    upgrade(config.database_url)
    _pin_audit_origin(config)
    if demo and new_database:
        _set_aside_demo_checkpoint_records(config)
    if demo:
        _register_demo(config)
    if demo:
        _record_demo_settings(config)
    click.echo("initialised; `gateway serve` starts the server (./run.sh starts it next by itself)")


def _refuse_mixing_demo_and_production(demo: bool) -> None:
    """A production ``init`` must not take over the demo's database and keys through its gateway.toml,
    nor ``init --demo`` (./run.sh) put demo agencies and keys into a deployment's database and keys."""
    from gateway import local_deployment

    if not demo and local_deployment.demo_settings_here(os.environ):
        fail(
            f"{local_deployment.SETTINGS_FILE} in this folder is the demo's (written by `./run.sh`): set up a "
            "production deployment in a folder of its own, with its own settings file (GATEWAY_CONFIG)"
        )
    if demo and local_deployment.production_settings_in_use(os.environ):
        fail(
            "the settings file in use names a deployment that is not the demo (demo is not true there): "
            "run the demo (./run.sh) in a folder of its own"
        )


def _record_demo_settings(config: Config) -> None:
    """The demo's settings in gateway.toml, so the README's second shell needs no exports."""
    from gateway import local_deployment

    recorded = {
        "demo": True,
        "database_url": config.database_url,
        "keys_dir": config.keys_dir,
        "redis_url": config.redis_url,
        "public_url": config.public_url if local_deployment.public_url_chosen(os.environ) else None,
    }
    settings = local_deployment.write_settings(recorded, os.environ)
    if settings is not None:
        click.echo(f"settings written to {settings}: the other `gateway` commands run in this folder read them")
        if "database_url" not in settings.read_text(encoding="utf-8"):
            click.echo(
                "  (the database URL holds a password and is not written: export GATEWAY_DATABASE_URL there too)"
            )


def _pin_audit_origin(config: Config) -> None:
    from gateway.audit.origin import pin_audit_origin
    from gateway.store.db import Database

    database = Database(config.database_url)
    try:
        pin_audit_origin(config, database)
    finally:
        database.dispose()


def _has_audit_log(url: str) -> bool:
    """Whether the database already holds an audit log's tables (emptied or not)."""
    import sqlalchemy as sa

    from gateway.store.db import Database
    from gateway.store.tables import audit_head

    database = Database(url)
    try:
        if database.is_sqlite and not Path(sa.engine.make_url(url).database or "").is_file():
            return False
        with database.engine.connect() as conn:
            return bool(sa.inspect(conn).has_table(audit_head.name))
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        database.dispose()


def _set_aside_demo_checkpoint_records(config: Config) -> None:
    """A new demo database is a new log; the last demo log's record of signed checkpoints would make the
    signer refuse it.  Only this command (run with the keys folder) moves records: nothing in a database
    can (issue 13), so emptying an existing database's tables is still refused at signing."""
    from gateway.audit.published import PublishedCheckpoint

    kept = PublishedCheckpoint(config.published_checkpoints_dir, config.audit_origin).set_aside_all()
    for record in kept:
        click.echo(
            f"a new demo database: the record of the previous demo log ({record.note.split(chr(10), 1)[0]}, "
            f"{record.size} entries) was set aside in {config.published_checkpoints_dir}/"
        )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_demo(config: Config) -> None:
    from gateway.demo import DEMO_AGENCIES, make_agency_keys, register_demo_agency, register_demo_portal
    from gateway.keys import DevStatusUrls
    from gateway.services import DEMO_PORTAL

    with cli_services() as svc:
        for code, name, parent in DEMO_AGENCIES:
            files = make_agency_keys(config.keys_dir, code, name, DevStatusUrls(config.public_url))
            certificates = pki.load_certificates(files.signing_cert)
            if register_demo_agency(svc, code, name, parent, files.client_public_key.read_text(), certificates):
                click.echo(f"  demo agency {code}  {name}  (keys in {files.directory}/)")
        if register_demo_portal(svc, *DEMO_PORTAL):
            click.echo(
                f"  citizen portal {DEMO_PORTAL[0]}  {DEMO_PORTAL[1]}  "
                "(dossiers are signed with the portal key, keys/portal-signing.key)"
            )


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
@click.option(
    "--signer/--no-signer",
    default=True,
    show_default=True,
    help="Run `gateway audit signer`, the one process that loads the checkpoint key (--no-signer when it "
    "runs on another host).",
)
def serve(host: str, port: int, workers: int, delivery_workers: int, signer: bool) -> None:
    """Run the HTTP server (gunicorn) and delivery workers with this folder's configuration.

    The public URL is ``http://HOST:PORT`` unless ``GATEWAY_PUBLIC_URL`` (or the settings file) names
    one: tokens, the workbench login and the development PKI's URLs follow the port actually served.
    """
    from gateway import local_deployment

    config = load_config()
    missing = config.missing_key_files()
    if missing:
        fail("\n".join(missing))
    _require_free_port(host, port)
    env = dict(os.environ)
    public_url = config.public_url
    if not local_deployment.public_url_chosen(env):
        public_url = local_deployment.url_for_listener(host, port)
        env["GATEWAY_PUBLIC_URL"] = public_url
    local_deployment.record_served(public_url, host, port)
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
        f"(Ctrl-C to stop); public URL {public_url}"
    )
    if config.witnesses:
        names = ", ".join(e.split()[0].split("+")[0] for e in config.witnesses)
        click.echo(f"checkpoints go to {len(config.witnesses)} witness(es): {names}")
    if config.demo:
        click.echo("DEMO MODE: development keys, identity provider and test citizens; never for production")
    # Only the signer loads the checkpoint key; the others read its public verifier keys (issue 13).
    workers_env = {**env, "GATEWAY_SIGNS_CHECKPOINTS": "false"}
    children = []
    if signer:
        children.append(_start_signer(config, env))
    if delivery_workers == 0 and not children:
        os.execve(sys.executable, args, workers_env)  # noqa: S606 - replaces this process with gunicorn
    children += [
        subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], env=workers_env)
        for _ in range(delivery_workers)
    ]
    server = subprocess.Popen(args, env=workers_env)  # noqa: S603 - our own interpreter and gunicorn

    def forward(signum: int, _frame: object) -> None:
        for child in (server, *children):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = server.wait()
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a child that will not stop is not left running on its own
            click.echo(f"a helper process (pid {child.pid}) did not stop in 30 s: killed", err=True)
            child.kill()
            child.wait()
    sys.exit(code)


def _start_signer(config: Config, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The checkpoint signer, started first: web workers begin with its verifier keys published."""
    import time

    env = {**env, "GATEWAY_SIGNS_CHECKPOINTS": "true"}
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "audit", "signer"], env=env)
    deadline = time.monotonic() + 30
    while not config.audit_vkeys_path.is_file() and time.monotonic() < deadline:
        if process.poll() is not None:
            fail("the checkpoint signer (`gateway audit signer`) stopped at once: see its message above")
        time.sleep(0.1)
    return process


def _require_free_port(host: str, port: int) -> None:
    """One clear line for a busy port, instead of gunicorn's bind retries after "serving on …"."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop what runs there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port with --port"
            )


@main.group()
def db() -> None:
    """Database schema."""


def _progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total} pages", nl=done >= total, err=True)

    return show


@db.command("backup")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def db_backup(out: Path, force: bool) -> None:
    """Back up the database while the gateway runs (SQLite online backup API, or pg_dump).

    Back up keys/ too, apart from the database: it holds the keys and the record of published
    checkpoints that keeps a restored gateway from forking its audit log.
    """
    from gateway.store.backup import BackupError, backup

    config = load_config()
    if out.exists() and not force:
        fail(f"{out} exists: choose another name or pass --force")
    try:
        backup(config.database_url, out, _progress("backing up") if config.is_sqlite else None)
    except BackupError as exc:
        fail(str(exc))
    click.echo(f"wrote {out} ({out.stat().st_size} bytes)")


@db.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm: the database's current contents are replaced.")
def db_restore(source: Path, yes: bool) -> None:
    """Replace the database with a backup.  Stop every gateway server and worker first.

    Afterwards undelivered documents are delivered again (receivers deduplicate by Idempotency-Key),
    and if the backup is older than the newest published checkpoint the gateway refuses to sign
    until a newer backup is restored or `gateway audit accept-restore` records the loss.
    """
    from gateway.store import upgrade
    from gateway.store.backup import BackupError, restore

    config = load_config()
    if not yes:
        fail(f"this replaces the contents of {config.database_url.split('@')[-1]}: add --yes to go ahead")
    try:
        restore(config.database_url, source, _progress("restoring") if config.is_sqlite else None)
    except BackupError as exc:
        fail(str(exc))
    upgrade(config.database_url)  # a backup from an older release gets this release's schema
    click.echo(f"restored {source}; start the gateway, then check `curl /readyz`")


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from gateway.store import upgrade

    config = load_config()
    upgrade(config.database_url)
    click.echo("database is at the latest schema")


@db.command("grant-runtime")
@click.argument("role")
@json_option
def db_grant_runtime(role: str, as_json: bool) -> None:
    """PostgreSQL: let ROLE run the gateway without being able to rewrite its audit log.

    Run as the schema's owner (the role `gateway init` migrated with).  ROLE may then read and append
    to the audit log but not alter, drop, truncate, update or delete it; point GATEWAY_DATABASE_URL of
    the servers and workers at ROLE, and keep the owner's for `gateway init` and `gateway db upgrade`.
    """
    from gateway.store.db import Database
    from gateway.store.roles import RoleProblem, grant_runtime_role

    config = load_config()
    database = Database(config.database_url)
    try:
        with database.write() as conn:
            statements = grant_runtime_role(conn, role)
    except RoleProblem as exc:
        fail(str(exc))
        return
    finally:
        database.dispose()
    emit(
        {"role": role, "statements": statements},
        as_json,
        lambda r: f"granted {r['role']} the runtime privileges:\n" + "\n".join(f"  {s};" for s in r["statements"]),
    )


# --- keys -----------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Development keys (never for production)."""


@keys.command("init")
@click.option("--force", is_flag=True, help="Replace existing development keys.")
def keys_init(force: bool) -> None:
    """Create a development CA, the gateway's seal key and certificate, and its token key in keys/."""
    from gateway.keys import DevStatusUrls, init_development_keys

    config = load_config()
    try:
        written = init_development_keys(config.keys_dir, DevStatusUrls(config.public_url), force=force)
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
    from gateway.keys import DevStatusUrls

    if not is_agency_code(code):
        fail(f"{code!r} is not an agency code (000.00.00.H29 or H55.242 form)")
    config = load_config()
    try:
        files = make_agency_keys(config.keys_dir, code, name or code, DevStatusUrls(config.public_url))
    except FileNotFoundError as exc:
        fail(str(exc))
    for path in (files.signing_key, files.signing_cert, files.client_key, files.client_public_key):
        click.echo(f"{path}")


@keys.command("rotate")
@click.argument("kind", type=click.Choice(["token", "seal", "checkpoint"]))
@click.option(
    "--overlap-hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="How long the old key is still accepted.",
)
@click.option(
    "--publish-seconds",
    default=10,
    show_default=True,
    type=click.IntRange(2, 3600),
    help="How long the new key is announced before it signs (every process re-reads keys each second).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The new key (seal: required outside demo mode).",
)
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The new seal key's certificate.",
)
@json_option
def keys_rotate(
    kind: str, overlap_hours: float, publish_seconds: int, key_file: Path | None, cert_file: Path | None, as_json: bool
) -> None:
    """Rotate the access-token, seal or checkpoint key with no downtime (announce, switch, overlap); audited.

    Run it once, on one host, while the gateway serves: servers and workers pick the new key up by
    themselves.  The keys/ folder must be the one every gateway process reads.
    """
    import tempfile
    import time

    from gateway.audit.log import AuditEvent
    from gateway.keyring import promote, start_rotation
    from gateway.keys import DevStatusUrls, load_development_ca

    config = load_config()
    overlap = int(overlap_hours * 3600)
    if kind == "token" and overlap < config.access_token_ttl + 120:
        fail(
            f"--overlap-hours must cover the access tokens' lifetime ({config.access_token_ttl} s) and delivery tokens'"
        )
    if kind == "seal" and key_file is None:
        if not config.demo:
            fail(
                "give the new seal key and the certificate your CA issued for it: "
                "--key new-seal.key --cert new-seal.crt"
            )
        issued = pki.issue_signing_certificate(
            load_development_ca(config.keys_dir),
            "Interconnect Gateway seal (development)",
            "Interconnect Gateway",
            key=pki.generate_key("ec"),
            ocsp_url=DevStatusUrls(config.public_url).ocsp,
            crl_url=DevStatusUrls(config.public_url).crl,
        )
        folder = Path(tempfile.mkdtemp(prefix="gateway-seal-"))
        key_file, cert_file = folder / "seal.key", folder / "seal.crt"
        pki.save_private_key(issued.key, key_file)
        pki.save_certificate(issued.cert, cert_file)
    with cli_services() as svc:
        try:
            rotation = start_rotation(
                config, kind, publish_seconds=publish_seconds, new_key=key_file, new_cert=cert_file
            )
        except ValueError as exc:
            fail(str(exc))
        svc.ring.refresh()  # a checkpoint key: the public verifier keys file lists the new key at once
        svc.audit.record(
            svc.db,
            AuditEvent(event="keys.rotation-started", outcome="ok", actor="operator", reason=f"{kind}: {rotation.new}"),
        )
        for left in range(publish_seconds, 0, -1):
            if not as_json:
                click.echo(f"\rannouncing the new {kind} key: {left:3d} s before it signs …", nl=False, err=True)
            time.sleep(1)
        if not as_json:
            click.echo("", err=True)
        done = promote(config, rotation, overlap_seconds=overlap)
        svc.ring.refresh()
        svc.audit.record(
            svc.db,
            AuditEvent(
                event="keys.rotated",
                outcome="ok",
                actor="operator",
                reason=f"{kind}: {done.new} signs now; {done.old} accepted until {done.until}",
            ),
        )
    emit(
        {"kind": kind, "new": done.new, "old": done.old, "old_accepted_until": done.until},
        as_json,
        lambda d: (
            f"{d['kind']} key rotated: the new key signs now; the old one is accepted until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(d['old_accepted_until']))}"
        ),
    )


REVOCATION_REASONS = ("keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "unspecified")


@keys.command("revoke")
@click.argument("code")
@click.option(
    "--reason", type=click.Choice(REVOCATION_REASONS), default="keyCompromise", show_default=True, help="CRLReason."
)
@click.option("--cert", "cert_file", type=click.Path(exists=True, path_type=Path), help="Revoke this certificate.")
@json_option
def keys_revoke(code: str, reason: str, cert_file: Path | None, as_json: bool) -> None:
    """Revoke a development agency certificate at the development CA (demo mode's OCSP responder and CRL)."""
    from cryptography import x509

    from gateway.demo import agency_key_files
    from gateway.trust.dev_pki import DevRevocations

    config = load_config()
    path = cert_file or agency_key_files(config.keys_dir, code).signing_cert
    if not path.is_file():
        fail(f"{path} is missing: `gateway keys revoke` revokes development certificates made by `gateway init --demo`")
    cert = pki.load_certificates(path)[0]
    revocations = DevRevocations(config.dev_revocations_path)
    revocations.revoke(cert, reason=x509.ReasonFlags(reason))
    found = revocations.lookup(cert.serial_number)
    assert found is not None
    emit(
        {
            "agency": code,
            "certificate_sha256": pki.fingerprint(cert),
            "serial": format(cert.serial_number, "x"),
            "revoked_at": found[0].isoformat(),
            "reason": reason,
        },
        as_json,
        lambda r: (
            f"revoked {r['agency']}'s certificate {r['certificate_sha256'][:16]}… ({r['reason']}) at "
            f"{r['revoked_at']}; the development OCSP responder and CRL say so from now on"
        ),
    )


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(exists=True, path_type=Path), help="Signing key (PEM).")
@click.option("--cert", required=True, type=click.Path(exists=True, path_type=Path), help="Certificate (PEM).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--pss", is_flag=True, help="RSA-PSS instead of PKCS#1 v1.5 (RSA keys only).")
def sign(file: Path, key: Path, cert: Path, out: Path | None, pss: bool) -> None:
    """Sign an unsigned edXML document with the edXML signature profile."""
    from gateway.documents.signing import sign_edxml, signature_method_for

    try:
        signing_key = pki.load_private_key(key)
    except (ValueError, TypeError):
        fail(f"--key {key}: not a PEM private key (RSA or EC); is it the certificate? Give the .key file")
    try:
        chain = pki.load_certificates(cert)
    except ValueError:
        fail(f"--cert {cert}: not a PEM certificate; give the .crt file issued for the key")
    if not chain or not pki.same_public_key(signing_key, chain[0]):
        fail(
            f"--cert {cert} is not the certificate of --key {key}: use the key and certificate of the same agency "
            "(keys/agencies/CODE/signing.key and signing.crt)"
        )
    try:
        signed = sign_edxml(file.read_bytes(), signing_key, chain, method=signature_method_for(signing_key, pss=pss))
    except (Refusal, ValueError) as exc:
        fail(f"{file}: {exc}")
    if out is None:
        sys.stdout.buffer.write(signed)
    else:
        out.write_bytes(signed)
        click.echo(f"signed {file} -> {out}", err=True)


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--seal", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The gateway's seal for this document."
)
@click.option(
    "--evidence",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An evidence package (GET /v1/documents/{id}/evidence): checks every part at the signing time.",
)
@click.option(
    "--trust",
    "--anchors",
    "trust_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Trust anchor certificate(s) (PEM); default: the configured anchors.",
)
@click.option(
    "--sender-cert",
    type=click.Path(exists=True, path_type=Path),
    help="Pin the sender's certificate: binds the signer to From when there is no seal.",
)
@click.option(
    "--gateway-cert",
    type=click.Path(exists=True, path_type=Path),
    help="Pin the gateway's seal certificate: download /.well-known/gateway-seal.pem once, keep it apart "
    "from the files you receive.",
)
@click.option(
    "--vkey",
    help="Pin the audit log's verifier key, or a file holding it (`gateway audit vkey`); needed with --evidence.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --evidence: a witness policy (C2SP tlog-policy) the receipt's checkpoint must meet; replaces --vkey.",
)
@click.option(
    "--revocation-freshness-seconds",
    "freshness",
    default=3600,
    show_default=True,
    type=click.IntRange(60, 7 * 86400),
    help="How old the kept OCSP answer may be at receipt: the gateway's GATEWAY_REVOCATION_FRESHNESS_SECONDS.",
)
@click.option(
    "--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True, help="Language of the report."
)
@json_option
def verify(
    file: Path | None,
    seal: Path | None,
    evidence: Path | None,
    trust_files: tuple[Path, ...],
    sender_cert: Path | None,
    gateway_cert: Path | None,
    vkey: str | None,
    policy_path: Path | None,
    freshness: int,
    lang: str,
    as_json: bool,
) -> None:
    """Verify a signed edXML document (and its seal), or an evidence package, offline: no database, no server.

    \b
    gateway verify DOC --sender-cert SENDER.crt
    gateway verify DOC --seal SEAL --gateway-cert gateway-seal.pem
    gateway verify --evidence PACKAGE --gateway-cert gateway-seal.pem --anchors ca.crt
    """
    from gateway.documents.offline import verify_offline

    if (file is None) == (evidence is None):
        fail("give a document FILE, or --evidence PACKAGE (not both)")
    # No pin is ever taken from beside the files being checked: whoever supplies them could plant it there.
    # Usage mistakes exit 2 (click's convention), so a script tells them from an invalid (1) or
    # indeterminate (3) result.
    if (seal is not None or evidence is not None) and gateway_cert is None:
        raise click.UsageError(
            "pin the gateway's seal certificate with --gateway-cert FILE (download "
            "GATEWAY_PUBLIC_URL/.well-known/gateway-seal.pem once and keep it apart from received files)"
        )
    policy = None
    if evidence is not None and policy_path is not None:
        from gateway.audit.witness_policy import WitnessPolicy

        try:
            policy = WitnessPolicy.load(policy_path)
        except Refusal as refusal:
            raise click.UsageError(f"--policy {policy_path}: {refusal.reason}") from None
        vkey = _verifier_key(vkey) if vkey else None
    elif evidence is not None:
        vkey = _verifier_key(vkey)
    pinned = _certificates(gateway_cert) if gateway_cert else []
    if trust_files:
        anchors = [c for p in trust_files for c in _certificates(p)]
    else:
        config = load_config()
        anchors = [c for p in config.trust_anchor_paths if p.is_file() for c in _certificates(p)]
        if not anchors:
            fail("no trust anchors: pass --anchors CA.pem or run `gateway keys init`")
    if evidence is not None:
        from gateway.trust.evidence import verify_package
        from gateway.trust.evidence_report import render

        report = verify_package(
            read_download(evidence, "an evidence package"),
            anchors=anchors,
            gateway_certs=pinned,
            vkey=vkey,
            freshness_seconds=freshness,
            policy=policy,
        )
        if gateway_cert is not None:
            report["gateway_certificate"] = {"file": str(gateway_cert), "sha256": pki.fingerprint(pinned[0])}
        emit(report, as_json, lambda r: render(r, "en" if lang == "en" else "vi"))
    else:
        assert file is not None
        report = verify_offline(
            read_download(file, "an edXML document"),
            anchors,
            seal=read_download(seal, "a seal") if seal else None,
            sender_certs=_certificates(sender_cert) if sender_cert else None,
            gateway_certs=pinned or None,
        )
        emit(report, as_json, report_text)
    if report["verdict"] != "valid":
        sys.exit(3 if report["verdict"] == "indeterminate" else 1)


def _verifier_key(given: str | None) -> str:
    """``--vkey`` as the key itself or as a file holding it (as `gateway audit verify-receipt` takes it)."""
    from gateway.audit.checkpoint import NoteVerifier

    if not given:
        raise click.UsageError(
            "pin the audit log's verifier key with --vkey KEY-or-FILE (the gateway's operator publishes it; "
            "on the gateway: `gateway audit vkey`)"
        )
    text = Path(given).read_text().strip() if Path(given).is_file() else given.strip()
    try:
        NoteVerifier.parse(text)
    except Refusal as refusal:
        raise click.UsageError(f"--vkey: {refusal.reason}") from None
    return text


def _certificates(path: Path) -> list[Any]:
    try:
        found = pki.load_certificates(path)
    except ValueError:
        found = []
    if not found:
        fail(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return found


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
    clients = config.effective_dev_idp_clients
    settings = DevIdpSettings(issuer, key, audience or config.citizen_audience, state, clients)
    app.register_blueprint(dev_idp_blueprint(settings))
    click.echo(
        f"development identity provider (NOT VNeID) at {issuer}; discovery: {issuer}/.well-known/openid-configuration"
    )
    click.echo(f'trust it with [[issuers]] issuer = "{issuer}", audiences = ["{audience or config.citizen_audience}"]')
    app.run(host=host, port=port)


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


for command in (agency, audit, worker, deliveries, witness, vxp):
    main.add_command(command)
agency.add_command(agency_sync_vxp)
agency.add_command(agency_vxp_credentials)

if __name__ == "__main__":
    main()
