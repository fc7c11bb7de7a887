"""``gateway audit monitor URL``: follow a log through its C2SP tlog-tiles and say at once when it misbehaves.

Exit codes: 0 every checkpoint checked; 1 the log misbehaved (a checkpoint that does not verify,
tiles that do not hash to it, a rollback or a fork); 3 the log could not be reached (retry) or
refused the entry bundles.  The state file is only replaced after a check that passed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from gateway.audit.commands import _trust, vkeys_option


def _say(as_json: bool, data: dict[str, Any], line: str, *, err: bool = False) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else line, err=err and not as_json)


def _progress(done: int, total: int) -> None:
    """``fetched tiles 3/40`` on standard error, about ten times per catch-up (on a terminal, in place)."""
    if total < 8:
        return
    step = max(1, total // 10)
    if sys.stderr.isatty():
        click.echo(f"\rfetched tiles {done}/{total}", nl=done == total, err=True)
    elif done % step == 0 or done == total:
        click.echo(f"fetched tiles {done}/{total}", err=True)


@click.command("monitor")
@click.argument("url")
@vkeys_option
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file of the size and root last verified (created on the first run, replaced atomically).",
)
@click.option("--once", is_flag=True, help="Check the latest checkpoint once and exit (the default).")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Check again every SECONDS, until the log misbehaves.",
)
@click.option(
    "--entries", "check_entries", is_flag=True, help="Also fetch the entry bundles and check every entry's hash."
)
@click.option(
    "--token",
    envvar="GATEWAY_AUDITOR_TOKEN",
    help="An auditor's bearer token, for --entries (or GATEWAY_AUDITOR_TOKEN): entry bundles are not public.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a sentence.")
def monitor(
    url: str,
    vkeys: tuple[str, ...],
    policy_path: Path | None,
    state_path: Path,
    once: bool,
    interval: float | None,
    check_entries: bool,
    token: str | None,
    as_json: bool,
) -> None:
    """Follow the audit log at URL (its tlog-tiles prefix, e.g. https://gateway.example/v1/audit/tlog).

    Each checkpoint's signature (and witnesses' quorum, with --policy) is verified, the root is
    recomputed from the tiles, and the tree must extend the one this monitor saw last."""
    from gateway.audit.monitor import (
        AccessRefused,
        LogUnreachable,
        Monitor,
        MonitorAlarm,
        NotConsistent,
        StateInvalid,
        follow,
    )

    if once and interval is not None:
        raise click.UsageError("give --once or --interval, not both")
    if check_entries and not token:
        raise click.UsageError("--entries needs an auditor's --token (or GATEWAY_AUDITOR_TOKEN)")
    verifier, policy = _trust(vkeys, policy_path)
    checker = Monitor(
        url, verifier, policy=policy, token=token, check_entries=check_entries, progress=None if as_json else _progress
    )
    while True:
        try:
            checked = follow(checker, state_path)
        except NotConsistent as exc:
            detail = f"the log at {checker.url} is not consistent with what this monitor saw before: {exc}"
            _say(as_json, {"verdict": "inconsistent", "url": checker.url, "detail": str(exc)}, detail, err=True)
            sys.exit(1)
        except MonitorAlarm as exc:
            _say(
                as_json,
                {"verdict": "invalid", "url": checker.url, "detail": str(exc)},
                f"{checker.url}: {exc}",
                err=True,
            )
            sys.exit(1)
        except StateInvalid as exc:
            raise click.ClickException(f"--state: {exc}") from None
        except AccessRefused as exc:
            _say(as_json, {"verdict": "refused", "url": checker.url, "detail": str(exc)}, str(exc), err=True)
            sys.exit(3)
        except LogUnreachable as exc:
            again = f"retrying in {interval:g} s" if interval is not None else "retry later"
            _say(
                as_json,
                {"verdict": "unreachable", "url": checker.url, "detail": str(exc)},
                f"the log could not be reached: {exc}; {again}",
                err=True,
            )
            if interval is None:
                sys.exit(3)
        else:
            _say(as_json, checked.as_dict(), checked.line())
        if interval is None:
            return
        time.sleep(interval)
