"""Nobody with the gateway's own database login can rewrite the audit log (issue 13, item 4).

On PostgreSQL the owner migrates and the gateway runs as a runtime role: it appends and reads the log
but cannot alter, drop, truncate, update or delete it, and TRUNCATE is refused by a trigger even for
the owner (row-level triggers never see it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway import create_app
from gateway.cli import main
from gateway.store.roles import LOG_TABLES
from tests.conftest import POSTGRES_ADMIN_URL, fresh_postgres_database, make_config, register_agencies
from tests.support import HCM, GatewayClient, sample


@pytest.fixture
def owned_database() -> Iterator[str]:
    with fresh_postgres_database("gateway_roles") as url:
        yield url


@pytest.fixture
def runtime_role(owned_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh login role given the runtime privileges by `gateway db grant-runtime`, as an operator would."""
    role = f"gateway_runtime_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    try:
        monkeypatch.setenv("GATEWAY_DATABASE_URL", owned_database)
        done = CliRunner().invoke(main, ["db", "grant-runtime", role, "--json"])
        assert done.exit_code == 0, done.output
        yield role
    finally:
        owner = sa.create_engine(owned_database, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
        owner.dispose()
        with admin.connect() as conn:
            conn.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(owned_database).database}" WITH (FORCE)')
            )
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def _as(url: str, role: str) -> str:
    return sa.engine.make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.mark.parametrize("table", LOG_TABLES)
def test_truncate_of_a_log_table_is_refused_even_for_the_owner(owned_database, table):
    engine = sa.create_engine(owned_database)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE"), engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {table} CASCADE"))
    finally:
        engine.dispose()


def test_the_runtime_role_runs_the_gateway_but_cannot_rewrite_the_log(owned_database, runtime_role, dev_pki):
    url = _as(owned_database, runtime_role)
    app = create_app(make_config(url, dev_pki))
    svc = app.extensions["gateway"]
    try:
        register_agencies(svc, dev_pki)
        sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
        assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
        assert svc.checkpoints.refresh(force=True).size > 0  # appends and signs as the runtime role
    finally:
        svc.db.dispose()

    engine = sa.create_engine(url)
    attempts = [
        "TRUNCATE {t} CASCADE",
        "UPDATE {t} SET {c} = {c}",
        "DELETE FROM {t}",
        "ALTER TABLE {t} DISABLE TRIGGER ALL",
        "DROP TRIGGER {t}_append_only ON {t}",
        "DROP TABLE {t} CASCADE",
    ]
    columns = {"audit_entries": "idx", "audit_nodes": "level", "audit_checkpoints": "size"}
    try:
        for table in LOG_TABLES:
            for attempt in attempts:
                statement = attempt.format(t=table, c=columns[table])
                with pytest.raises(sa.exc.DBAPIError, match=r"permission denied|must be owner"), engine.begin() as conn:
                    conn.execute(sa.text(statement))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one() > 0
    finally:
        engine.dispose()


def test_granting_explains_a_missing_role_a_superuser_and_sqlite(owned_database, monkeypatch, tmp_path):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", owned_database)
    missing = CliRunner().invoke(main, ["db", "grant-runtime", "no_such_role_here"])
    assert missing.exit_code != 0 and "CREATE ROLE" in missing.output
    superuser = CliRunner().invoke(main, ["db", "grant-runtime", "postgres"])
    assert superuser.exit_code != 0 and "superuser" in superuser.output
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'g.db'}")
    embedded = CliRunner().invoke(main, ["db", "grant-runtime", "anyone"])
    assert embedded.exit_code != 0 and "PostgreSQL" in embedded.output
