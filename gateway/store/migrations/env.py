"""Alembic environment: migrations target the metadata in gateway.store.tables."""

from __future__ import annotations

from alembic import context

from gateway.store.db import Database
from gateway.store.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
database = Database(url)
with database.write() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=database.is_sqlite)
    context.run_migrations()
database.dispose()
