"""``gateway vxp …``: the national document axis from the city's side."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli_support import cli_services, emit, fail, json_option, load_config, stop_on_signals, table
from gateway.config import Config

if TYPE_CHECKING:
    from gateway.vxp.client import AxisClient


def axis_client(config: Config) -> AxisClient:
    """The axis as this deployment's settings name it, or one line saying which settings are missing."""
    from gateway.vxp.client import AxisClient

    missing = [
        name
        for name, value in (
            ("GATEWAY_VXP_ENDPOINT", config.vxp_endpoint),
            ("GATEWAY_VXP_SYSTEMID", config.vxp_systemid),
            ("GATEWAY_VXP_SECRET_FILE", config.vxp_secret_file),
        )
        if not value
    ]
    if missing:
        fail(f"set {', '.join(missing)}: the axis's endpoint, and the system id and secret it issued this city")
    assert config.vxp_secret_file is not None and config.vxp_endpoint and config.vxp_systemid
    try:
        secret = Path(config.vxp_secret_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(f"GATEWAY_VXP_SECRET_FILE {config.vxp_secret_file}: {exc.strerror}")
    return AxisClient(config.vxp_endpoint, config.vxp_systemid, secret)


@click.group()
def vxp() -> None:
    """The national document interconnection axis (Trục liên thông văn bản quốc gia)."""


@vxp.command("receive")
@click.option("--once", is_flag=True, help="One pass over what waits at the axis, then exit.")
@click.option(
    "--interval", type=click.FloatRange(1, 3600), help="Seconds between passes (default GATEWAY_VXP_POLL_SECONDS, 30)."
)
def vxp_receive(once: bool, interval: float | None) -> None:
    """Take what other provinces and ministries sent the city through the axis, and answer each.

    Each document goes through the same checks as any submission, as its sending agency (register
    agencies outside the city with `gateway agency add CODE … --adapter vxp`); the axis is told
    `done`, or `fail` with the reason.  Needs GATEWAY_VXP_ENDPOINT, GATEWAY_VXP_SYSTEMID and
    GATEWAY_VXP_SECRET_FILE.
    """
    from gateway.vxp.receiver import AxisReceiver

    config = load_config()
    client = axis_client(config)
    stop = stop_on_signals()
    with cli_services() as svc:
        receiver = AxisReceiver(svc, client)
        every = interval or float(config.vxp_poll_seconds)
        while True:
            try:
                done = receiver.run_once()
            except Exception:  # the database away, say: said, and the next pass tries again
                logging.getLogger("gateway.vxp").exception("an axis pass failed; the next one tries again")
                if once:
                    raise
                stop.wait(every)
                continue
            if once or done.accepted or done.refused or done.problems:
                click.echo(
                    f"axis pass: {done.accepted} accepted, {done.refused} refused, {done.answered} answered, "
                    f"{done.problems} problem(s)",
                    err=not once,
                )
            for doc_id, code, reason in done.refusals:  # what the axis was told, said here too
                click.echo(f"  refused axis document {doc_id}: {code}: {reason}", err=not once)
            if once or stop.wait(every):
                return


@click.command("sync-vxp")
@click.option(
    "--apply", "do_apply", is_flag=True, help="Write the changes shown (audited); without it, only show them."
)
@json_option
def agency_sync_vxp(do_apply: bool, as_json: bool) -> None:
    """The national axis's agency directory: what changed since the last sync (added, renamed, deleted).

    Both code forms are kept (QCVN 102 `code` and Decision 20 `code102`).  Run it without --apply to
    see the changes, then with --apply to write them.
    """
    from dataclasses import asdict

    from gateway.audit.log import AuditEvent
    from gateway.vxp import directory
    from gateway.vxp.client import AxisRefused, AxisUnavailable

    config = load_config()
    client = axis_client(config)
    try:
        now = directory.fetch(client)
    except (AxisUnavailable, AxisRefused) as exc:
        fail(f"the axis's directory cannot be had: {exc}; try again later")
    with cli_services() as svc:
        with svc.db.read() as conn:
            found = directory.changes(directory.stored(conn), now)
        if do_apply and found:
            with svc.db.write() as conn:
                directory.apply(conn, now, found)
                counts = {k: sum(c.kind == k for c in found) for k in ("added", "renamed", "changed", "deleted")}
                svc.audit.append(
                    conn,
                    AuditEvent(
                        event="vxp.directory-synced",
                        outcome="ok",
                        actor="operator",
                        reason=", ".join(f"{n} {k}" for k, n in counts.items() if n)[:500],
                    ),
                )
    rows: list[dict[str, Any]] = [asdict(c) for c in found]
    emit(
        {"applied": do_apply, "agencies": len(now), "changes": rows},
        as_json,
        lambda d: (
            f"{len(rows)} change(s) in the axis's directory of {d['agencies']} agencies"
            + (" (applied)" if do_apply else " (not applied: run again with --apply)" if rows else "")
            + ("\n" + table(rows, ["kind", "code", "before", "after"]) if rows else "")
        ),
    )


@click.command("vxp-credentials")
@click.argument("code")
@json_option
def agency_vxp_credentials(code: str, as_json: bool) -> None:
    """Issue the systemid and secret a departmental system built on the national SDK logs in with.

    Point the SDK's service.endpoint at GATEWAY_PUBLIC_URL/vxp and give it these; the secret is shown
    once (it is stored sealed) and a new one replaces the old at once.  Audited.
    """
    from gateway.audit.log import AuditEvent

    config = load_config()
    with cli_services() as svc:
        with svc.db.read() as conn:
            found = svc.registry.get(conn, code)
        if found is None:
            fail(f"agency {code} is not registered; see `gateway agency list`")
        if not found.client_public_key:
            fail(
                f"{code} is reached through the national axis (no client key): its own systems use the axis, "
                "not this gateway's /vxp/"
            )
        with svc.db.write() as conn:
            issued = svc.vxp_credentials.issue(conn, code)
            svc.audit.append(
                conn,
                AuditEvent(event="vxp.credentials-issued", outcome="ok", actor="operator", sender=code),
            )
    endpoint = config.public_url.rstrip("/") + "/vxp"
    emit(
        {"systemid": issued.systemid, "secret": issued.secret, "endpoint": endpoint},
        as_json,
        lambda d: (
            f"service.endpoint = {d['endpoint']}\nsystemid = {d['systemid']}\nsecret = {d['secret']}\n"
            "(the secret is shown this once: give it to the system's administrator now)"
        ),
    )


@vxp.command("dev-axis")
@click.option("--port", default=8095, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--system",
    "systems",
    multiple=True,
    required=True,
    metavar="SYSTEMID:CODE:SECRET_FILE",
    help="A system the axis knows: its id, its agency code, a file with its secret. Repeatable.",
)
@click.option(
    "--agency",
    "listed",
    multiple=True,
    metavar="CODE=NAME",
    help="An agency in the axis's directory (what `gateway agency sync-vxp` reads). Repeatable.",
)
def vxp_dev_axis(port: int, host: str, systems: tuple[str, ...], listed: tuple[str, ...]) -> None:
    """A development double of the national axis, for the demo and tests: never for production.

    Its endpoint is http://HOST:PORT/XrdAdapter; it keeps what it is sent in memory only.
    """
    from werkzeug.serving import make_server

    from gateway.vxp.dev_axis import Axis

    axis = Axis()
    for entry in systems:
        systemid, _, rest = entry.partition(":")
        code, _, secret_file = rest.partition(":")
        if not (systemid and code and secret_file):
            fail(f"--system {entry!r}: write SYSTEMID:CODE:SECRET_FILE")
        try:
            axis.register(systemid, Path(secret_file).read_text(encoding="utf-8").strip(), code)
        except OSError as exc:
            fail(f"--system {entry!r}: {secret_file}: {exc.strerror}")
    for entry in listed:
        code, sep, name = entry.partition("=")
        if not sep or not code or not name:
            fail(f"--agency {entry!r}: write CODE=NAME")
        axis.list_agency(code, name)
    server = make_server(host, port, axis, threaded=True)
    click.echo(
        f"development axis on http://{host}:{port}/XrdAdapter for {', '.join(s.split(':')[0] for s in systems)} "
        "(in memory; Ctrl-C to stop; never for production)"
    )
    server.serve_forever()
