"""``gateway audit …``: the verifier key, exports, and offline verification of bundles and receipts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli_support import (
    cli_services,
    emit,
    fail,
    json_option,
    load_config,
    read_download,
    report_text,
    stop_on_signals,
)
from gateway.json_input import parse_json
from gateway.policy import Refusal


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("vkey")
@click.option("--all", "every", is_flag=True, help="Also the keys before a rotation (one per line, current first).")
def audit_vkey(every: bool) -> None:
    """Print the verifier key of the log's checkpoints (give it to auditors, agencies and citizens)."""
    from gateway.audit.checkpoint import NoteSigner
    from gateway.audit.origin import pin_audit_origin
    from gateway.keyring import KeyRing
    from gateway.keys import load_ed25519_key
    from gateway.store.db import Database

    config = load_config()
    if not config.audit_key_path.is_file():
        fail(f"{config.audit_key_path} is missing: run `gateway keys init`")
    database = Database(config.database_url)
    try:
        config = pin_audit_origin(config, database)  # the name the log carries, as the server signs it
    finally:
        database.dispose()
    if not every:
        click.echo(NoteSigner(config.audit_origin, load_ed25519_key(config.audit_key_path)).vkey)
        return
    try:
        verifiers = KeyRing(config).snapshot.checkpoint_verifiers
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    for verifier in verifiers:
        click.echo(verifier.vkey)


def _verifier(vkeys: tuple[str, ...]) -> Any:
    """Every --vkey given (a key, or a file of keys one per line): a log whose key was rotated has several."""
    from gateway.audit.checkpoint import AnyOfVerifiers, NoteVerifier

    texts: list[str] = []
    for vkey in vkeys:
        texts += Path(vkey).read_text().split() if Path(vkey).is_file() else [vkey]
    try:
        return AnyOfVerifiers(tuple(NoteVerifier.parse(text) for text in texts))
    except Refusal as refusal:
        fail(f"--vkey: {refusal.reason}")
    except ValueError:
        fail("--vkey: give the log's verifier key (`gateway audit vkey`)")


def vkeys_option(f: Any) -> Any:
    f = click.option(
        "--vkey",
        "vkeys",
        multiple=True,
        help="The log's verifier key (the string, or a file of keys); repeat for keys before and after a rotation.",
    )(f)
    return click.option(
        "--policy",
        "policy_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A witness policy (C2SP tlog-policy: log, witness, group and quorum lines): the checkpoint must "
        "be signed by a listed log and cosigned by the quorum. Replaces --vkey.",
    )(f)


def _trust(vkeys: tuple[str, ...], policy_path: Path | None) -> tuple[Any, Any]:
    """The log verifier and the witness policy the command checks against (the policy's logs when given)."""
    from gateway.audit.witness_policy import WitnessPolicy

    if policy_path is None:
        if not vkeys:
            fail("give the log's verifier key (--vkey, `gateway audit vkey`) or a witness policy (--policy FILE)")
        return _verifier(vkeys), None
    try:
        policy = WitnessPolicy.load(policy_path)
    except Refusal as refusal:
        fail(f"--policy {policy_path}: {refusal.reason}")
        raise
    return (_verifier(vkeys) if vkeys else policy.log_verifier), policy


@audit.command("verify-receipt")
@click.argument("receipt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@vkeys_option
@json_option
def audit_verify_receipt(receipt: Path, vkeys: tuple[str, ...], policy_path: Path | None, as_json: bool) -> None:
    """Check a document's receipt offline: checkpoint signature (and witnesses), every entry's inclusion proof."""
    from gateway.audit.receipt import verify_receipt

    verifier, policy = _trust(vkeys, policy_path)
    try:
        data = parse_json(read_download(receipt, "a receipt"))
    except ValueError as exc:
        fail(f"{receipt} is not a JSON receipt: {exc}")
    report = verify_receipt(data, verifier, policy)
    emit(report, as_json, report_text)
    if report["verdict"] != "valid":
        sys.exit(1)


@audit.command("export")
@click.option("--from", "first", type=int, default=0, show_default=True, help="First entry index.")
@click.option("--to", "last", type=int, default=None, help="End index (exclusive); default: the whole log.")
@click.option("--since", help="Or by date, as the HTTP and workbench exports: 2026-11-01 (a day in Vietnam) or a time.")
@click.option("--until", help="Last day (included) or time (excluded) of the period.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def audit_export(first: int, last: int | None, since: str | None, until: str | None, out: Path) -> None:
    """Export entries [from, to) — or of a period, --since/--until — with their checkpoints and proofs."""
    from gateway.audit import periods
    from gateway.audit.bundle import write_bundle
    from gateway.audit.checkpoints import LogInconsistent

    if (since or until) and (first or last is not None):
        fail("give entry indices (--from/--to) or dates (--since/--until), not both")

    with cli_services() as svc:
        try:
            svc.witnessed_checkpoint()
        except LogInconsistent as exc:  # what is already signed can still be exported and checked
            click.echo(f"warning: no new checkpoint signed: {exc}", err=True)
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
            end = size if last is None else last
            if since or until:
                try:
                    found = periods.entries_between(
                        conn, periods.time_bound(since, "from"), periods.time_bound(until, "to")
                    )
                except Refusal as refusal:
                    fail(f"--since/--until: {refusal.reason}")
                if found is None:
                    fail("no audit entries in that period")
                    return
                first, end = found[0], found[1] + 1
            if not 0 <= first < end <= size:
                fail(f"--from/--to must satisfy 0 <= from < to <= {size} (the log's size)")
            try:
                with out.open("wb") as file:
                    write_bundle(conn, svc.checkpoints, first, end, file)
            except Refusal as refusal:
                out.unlink(missing_ok=True)
                fail(refusal.reason)
    click.echo(f"wrote {out}")


@audit.command("verify")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@vkeys_option
@json_option
def audit_verify(bundle: Path, vkeys: tuple[str, ...], policy_path: Path | None, as_json: bool) -> None:
    """Verify an exported bundle offline: signatures, roots from the raw entries, consistency, continuity."""
    from gateway.audit.bundle import verify_bundle

    def progress(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} entries", nl=False, err=True)

    verifier, policy = _trust(vkeys, policy_path)
    read_download(bundle, "an audit export", head_only=True)
    verdict = verify_bundle(bundle, verifier, progress if sys.stderr.isatty() else None, policy)
    if sys.stderr.isatty():
        click.echo("", err=True)
    emit(verdict.as_dict(), as_json, lambda v: f"{v['verdict'].upper()}: {v['detail']}")
    if not verdict.valid:
        sys.exit(1)


@audit.command("accept-restore")
@click.option("--reason", required=True, help="Why the lost entries are accepted as lost (kept in the log).")
def audit_accept_restore(reason: str) -> None:
    """After restoring an old backup: accept that entries after it are lost, so signing can resume.

    Checkpoints published before the restore no longer verify against the log: tell the auditors
    holding them.  The decision is itself an audit entry.
    """
    from gateway.audit.log import AuditEvent

    with cli_services() as svc:
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
            if size == 0:
                fail("the log is empty: there is nothing to accept")
        published = svc.checkpoints.published
        found = published.read() if published is not None else None
        if published is None or found is None or svc.checkpoints.published_problem() is None:
            fail("the log extends every checkpoint this gateway published: nothing to accept")
            return
        published.forget()
        lost = f"published checkpoint of size {found.size} superseded"
        svc.audit.record(
            svc.db,
            AuditEvent(
                event="audit.restore-accepted",
                outcome="ok",
                actor="operator",
                reason=f"log of {size} entries accepted; {lost}: {reason}"[:500],
            ),
        )
        svc.checkpoints.refresh(force=True)
    click.echo(f"accepted: checkpoint {found.size} is superseded; the log continues from {size} entries")


from gateway.audit.monitor_command import monitor  # noqa: E402 - it reuses this module's options

audit.add_command(monitor)


@audit.command("signer")
def audit_signer() -> None:
    """Sign the log's checkpoints until stopped: the one process that loads the checkpoint key.

    `gateway serve` starts it; run it yourself (on the host that keeps GATEWAY_AUDIT_KEY) when the
    web servers run elsewhere or with `gateway serve --no-signer`.
    """
    import logging

    from gateway.audit.signer import CheckpointSigner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = load_config()
    if not config.signs_checkpoints:
        fail("GATEWAY_SIGNS_CHECKPOINTS is false here: the signer is the process that signs; unset it for this one")
    stop = stop_on_signals()
    with cli_services() as svc:
        signer = CheckpointSigner(svc)
        click.echo(
            f"checkpoint signer for {svc.checkpoints.origin} started (key {config.audit_key_path}; verifier keys "
            f"published in {config.audit_vkeys_path}; {len(svc.witnesses.witnesses)} witness(es))",
            err=True,
        )
        last_said = [0.0]

        def report(signed: Any) -> None:
            import time

            if time.monotonic() - last_said[0] >= 60:
                click.echo(f"signer: checkpoint {signed.size} signed ({signer.signed} since start)", err=True)
                last_said[0] = time.monotonic()

        signer.run(stop, report)
        click.echo(f"checkpoint signer stopped after {signer.signed} checkpoints", err=True)
