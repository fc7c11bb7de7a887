"""Durable state through SQLAlchemy Core: one schema, SQLite (embedded default) or PostgreSQL."""

from gateway.store.db import Database
from gateway.store.migrate import upgrade

__all__ = ["Database", "upgrade"]
