"""What every ``gateway`` subcommand shares: configuration, services, failing helpfully, tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click

from gateway.config import Config, ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
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
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
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
