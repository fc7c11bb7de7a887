"""Small statements both dialects need to spell differently."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: content-addressed rows may already exist."""
    conn.execute(_insert_ignoring(conn.dialect.name, table), values)


@functools.lru_cache(maxsize=64)
def _insert_ignoring(dialect_name: str, table: sa.Table) -> Any:
    """Built once per table: on the submission path, building the statement cost more than running it."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything the gateway stores is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
