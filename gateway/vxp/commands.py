"""``gateway vxp …``: the national document axis from the city's side."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from gateway.cli_support import cli_services, fail, load_config


@click.group()
def vxp() -> None:
    """The national document interconnection axis (Trục liên thông văn bản quốc gia)."""


@vxp.command("receive")
@click.option("--once", is_flag=True, help="One pass over what waits at the axis, then exit.")
@click.option("--interval", type=click.FloatRange(1, 3600), help="Seconds between passes [GATEWAY_VXP_POLL_SECONDS].")
def vxp_receive(once: bool, interval: float | None) -> None:
    """Take what other provinces and ministries sent the city through the axis, and answer each.

    Each document goes through the same checks as any submission, as its sending agency (register
    agencies outside the city with `gateway agency add CODE … --adapter vxp`); the axis is told
    `done`, or `fail` with the reason.  Needs GATEWAY_VXP_ENDPOINT, GATEWAY_VXP_SYSTEMID and
    GATEWAY_VXP_SECRET_FILE.
    """
    from gateway.vxp.client import AxisClient
    from gateway.vxp.receiver import AxisReceiver

    config = load_config()
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
    client = AxisClient(config.vxp_endpoint, config.vxp_systemid, secret)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with cli_services() as svc:
        receiver = AxisReceiver(svc, client)
        every = interval or float(config.vxp_poll_seconds)
        while True:
            done = receiver.run_once()
            if once or done.accepted or done.refused or done.problems:
                click.echo(
                    f"axis pass: {done.accepted} accepted, {done.refused} refused, {done.answered} answered, "
                    f"{done.problems} problem(s)",
                    err=not once,
                )
            if once or stop.wait(every):
                return
