"""Fixtures: one development PKI per session; every storage and API test on SQLite *and* PostgreSQL.

PostgreSQL is a real server (``GATEWAY_TEST_POSTGRES_URL``, default the local one).  When it is
unreachable the PostgreSQL-parametrised tests fail loudly: they are never skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gateway import create_app
from gateway.config import Config
from gateway.demo import DEMO_AGENCIES, register_demo_agency, register_demo_portal
from gateway.keys import DevStatusUrls, init_development_keys, load_development_ca
from gateway.services import DEMO_PORTAL, Services
from gateway.store import upgrade
from gateway.store.db import Database
from gateway.trust import pki
from gateway.trust.dev_tsa import DevTsa
from tests.pki_server import LoopbackServer, dev_pki_app
from tests.support import PUBLIC_URL, AgencyKeys, GatewayClient, Pki, reset_database


@pytest.fixture(scope="session", autouse=True)
def no_deployment_of_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The checkout may hold a developer's ``gateway.toml`` and ``var/serving.json`` (run.sh writes them):
    commands the tests start read an empty settings file instead, so the suite means the same everywhere."""
    empty = tmp_path_factory.mktemp("settings") / "gateway.toml"
    empty.write_text("", encoding="utf-8")
    saved = os.environ.get("GATEWAY_CONFIG")
    os.environ["GATEWAY_CONFIG"] = str(empty)
    yield
    if saved is None:
        os.environ.pop("GATEWAY_CONFIG", None)
    else:
        os.environ["GATEWAY_CONFIG"] = saved


POSTGRES_ADMIN_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def status_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory, status_server: LoopbackServer) -> Pki:
    """The session's development CA, whose OCSP responder, CRL and TSA answer on a real loopback server."""
    keys_dir = tmp_path_factory.mktemp("keys")
    status = DevStatusUrls(status_server.base)
    init_development_keys(keys_dir, status)
    ca = load_development_ca(keys_dir)
    tsa = pki.Issued(pki.load_private_key(keys_dir / "dev-tsa.key"), pki.load_certificates(keys_dir / "dev-tsa.crt")[0])
    material = Pki(keys_dir=keys_dir, ca=ca, status=status)
    status_server.serve(dev_pki_app(ca, material.revocations, DevTsa(tsa, [ca.cert])))
    for code, name, _parent in DEMO_AGENCIES:
        material.agencies[code] = AgencyKeys(code, material.issue(code, name), pki.generate_key("ec"))
    return material


@contextmanager
def fresh_postgres_database(prefix: str = "gateway_test") -> Iterator[str]:
    """A new, migrated database on the real PostgreSQL server, dropped afterwards."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_ADMIN_URL} and is unreachable: {exc.orig}", pytrace=False)
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server for this test session, dropped at the end."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        upgrade(url)
        return url
    url: str = request.getfixturevalue("postgres_url")
    db = Database(url)
    reset_database(db)
    db.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    return url


def make_config(database_url: str, dev_pki: Pki, **overrides: object) -> Config:
    settings: dict[str, object] = {"demo": True, "public_url": PUBLIC_URL, "tsa_url": dev_pki.status.tsa, **overrides}
    # Each test's database is a new log under the session's keys: its own record of signed checkpoints
    # (the signer refuses a log that does not extend the one recorded, whatever the database says).
    settings.setdefault("audit_state_dir", Path(tempfile.mkdtemp(prefix="audit-state-")))
    return Config(database_url=database_url, keys_dir=dev_pki.keys_dir, **settings)  # type: ignore[arg-type]


def register_agencies(svc: Services, dev_pki: Pki) -> None:
    for code, name, parent in DEMO_AGENCIES:
        keys = dev_pki.agencies[code]
        register_demo_agency(svc, code, name, parent, pki.public_pem(keys.client_key), [keys.signing.cert])
    register_demo_portal(svc, *DEMO_PORTAL)


@pytest.fixture
def app(database_url: str, dev_pki: Pki) -> Iterator[Flask]:
    app = create_app(make_config(database_url, dev_pki))
    app.testing = True
    register_agencies(app.extensions["gateway"], dev_pki)
    yield app
    app.extensions["gateway"].db.dispose()


@pytest.fixture
def svc(app: Flask) -> Services:
    found: Services = app.extensions["gateway"]
    return found


@pytest.fixture
def agency(app: Flask, dev_pki: Pki):  # type: ignore[no-untyped-def]
    """``agency(code)`` → a :class:`GatewayClient` authenticated as that agency."""
    client = app.test_client()
    clients: dict[str, GatewayClient] = {}

    def get(code: str) -> GatewayClient:
        if code not in clients:
            clients[code] = GatewayClient(client, dev_pki.agencies[code])
            clients[code].token()  # authenticate up front so tests measure only what they send
        return clients[code]

    return get
