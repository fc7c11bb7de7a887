"""What every ``gateway`` subcommand shares: configuration, services, failing helpfully, tables and JSON."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from gateway.config import Config, ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def load_config() -> Config:
    try:
        return Config.load()
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers calm


@contextmanager
def cli_services() -> Iterator[Any]:
    from gateway.services import Services

    config = load_config()
    try:
        svc = Services.build(config)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    try:
        yield svc
    finally:
        svc.db.dispose()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # stored as UTC (SQLite: without a zone); shown on Vietnam's clock, zone named
        from zoneinfo import ZoneInfo

        from gateway.store.helpers import as_utc

        return as_utc(value).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).isoformat(sep=" ", timespec="seconds")
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [{c: _cell(r.get(c)) for c in columns} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in cells]
    return "\n".join(lines)


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else render(data))


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def stop_on_signals() -> threading.Event:
    """An event set when SIGTERM or SIGINT arrives, for long-running commands to stop after their batch.

    Not set from the signal handler: Python runs handlers in the main thread between bytecodes, and
    ``Event.set()`` takes the lock ``Event.wait()`` holds for a moment, so a signal arriving in that
    moment deadlocked the process for good (issue 11 newcomer: a ``gateway worker`` that ignored every
    SIGTERM after a stop).  The C-level handler writes the signal to a pipe instead
    (``signal.set_wakeup_fd``) and a thread that waits on it sets the event.
    """
    stop = threading.Event()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)  # a Python handler must exist for the wakeup byte to be written

    def watch() -> None:
        while True:
            received = os.read(read_end, 16)
            if {signal.SIGTERM.value, signal.SIGINT.value} & set(received):
                stop.set()
                return

    threading.Thread(target=watch, name="stop-on-signals", daemon=True).start()
    return stop


def read_download(path: Path, what: str, *, head_only: bool = False) -> bytes:
    """A file fetched from the gateway; an error answer saved in its place fails with what it said.

    A receipt saved with an expired token used to verify as "invalid: not a receipt", which reads
    like tampering (issue 11 newcomer)."""
    from gateway.json_input import saved_problem

    try:
        with path.open("rb") as f:
            data = f.read(64 * 1024 if head_only else -1)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    said = saved_problem(data)
    if said is not None:
        fail(
            f"{path} holds the gateway's error answer, not {what} ({said}); fetch it again "
            "(a 401 invalid-token: take a fresh token, they last 5 minutes) with curl --fail-with-body"
        )
    return data


def report_text(report: dict[str, Any], indent: str = "") -> str:
    """A verifier's report as people read it: ``key: value`` lines, lists one item a line, nested
    objects indented; never Python's ``['…']`` or ``{'…': …}`` (issue 11 newcomer)."""
    lines: list[str] = []
    for key, value in report.items():
        if value is None:
            lines.append(f"{indent}{key}: —")
        elif isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(report_text(value, indent + "  "))
        elif isinstance(value, list | tuple):
            lines.append(f"{indent}{key}:" + ("" if value else " —"))
            lines += [f"{indent}  - {item}" for item in value]
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)
