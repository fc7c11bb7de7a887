"""Backup and restore on SQLite (online backup API) and PostgreSQL (pg_dump / pg_restore) (issue 10).

A backup is taken while documents wait for delivery; more is accepted and a newer checkpoint is
published; then the backup is restored.  Afterwards the log in the database verifies offline, the
documents that were waiting are delivered, and the gateway refuses to sign a checkpoint that
would fork from the one it published after the backup — until the operator records the loss.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import create_app
from gateway.audit.checkpoints import LogInconsistent
from gateway.config import Config
from gateway.store import upgrade
from tests.conftest import fresh_postgres_database, make_config, register_agencies
from tests.receiver import Receiver
from tests.support import HCM, Q4, GatewayClient, Pki, sample


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: the restore replaces everything in it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        upgrade(url)
        yield url
        return
    with fresh_postgres_database("gateway_backup") as url:
        yield url


def _cli(config: Config, dev_pki: Pki, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": config.database_url,
        "GATEWAY_KEYS_DIR": str(config.keys_dir),
        "GATEWAY_AUDIT_STATE_DIR": str(config.published_checkpoints_dir),
        "GATEWAY_PUBLIC_URL": config.public_url,
        "GATEWAY_DEMO": "true",
        "GATEWAY_TSA_URL": str(dev_pki.status.tsa),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _submit(app, dev_pki: Pki, number: int) -> str:  # type: ignore[no-untyped-def]
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    sender.token()
    data = sample("cong-van.edxml").replace(b"1024/UBND-VX<", f"{number}/UBND-VX<".encode())
    response = sender.submit(sender.keys.sign(data))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def test_a_restored_backup_verifies_delivers_what_waited_and_never_forks_the_published_log(
    own_database, dev_pki, tmp_path
):
    keys = tmp_path / "keys"
    shutil.copytree(dev_pki.keys_dir, keys)  # keys/ is backed up apart: here it simply survives
    config = dataclasses.replace(make_config(own_database, dev_pki), keys_dir=keys)
    app = create_app(config)
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    with Receiver(Q4, dev_pki.agencies[Q4].client_key, svc.tokens.key.public_key()) as receiver:
        with svc.db.write() as conn:
            svc.registry.set_adapter(conn, Q4, "http", {"url": receiver.url})
        waiting = _submit(app, dev_pki, 1)  # routed to Q4 by push: not delivered before the backup
        before = svc.checkpoints.refresh(force=True)

        backup = tmp_path / "gateway.backup"
        done = _cli(config, dev_pki, "db", "backup", str(backup))
        assert done.returncode == 0, done.stderr
        assert _cli(config, dev_pki, "db", "backup", str(backup)).returncode != 0  # never overwritten silently

        _submit(app, dev_pki, 2)
        published = svc.checkpoints.refresh(force=True)  # published after the backup was taken
        assert published.size > before.size
        svc.db.dispose()

        refused = _cli(config, dev_pki, "db", "restore", str(backup))
        assert refused.returncode != 0 and "--yes" in refused.stderr
        done = _cli(config, dev_pki, "db", "restore", str(backup), "--yes")
        assert done.returncode == 0, done.stderr

        restored = create_app(config)
        svc = restored.extensions["gateway"]
        try:
            ready = restored.test_client().get("/readyz")
            assert ready.status_code == 503 and ready.get_json()["checks"]["audit_log"] is False
            assert "older backup" in ready.get_json()["details"]["audit_log"]
            _submit(restored, dev_pki, 3)  # accepted, but its entries may not be signed into a fork
            with pytest.raises(LogInconsistent, match="published checkpoint"):
                svc.checkpoints.refresh(force=True)

            svc.delivery_worker().run_once()
            assert waiting in receiver.documents  # what waited at backup time is delivered

            bundle = tmp_path / "audit.zip"
            exported = _cli(
                config, dev_pki, "audit", "export", "--from", "0", "--to", str(before.size), "--out", str(bundle)
            )
            assert exported.returncode == 0, exported.stderr
            vkey = _cli(config, dev_pki, "audit", "vkey").stdout.strip()
            verdict = _cli(config, dev_pki, "audit", "verify", str(bundle), "--vkey", vkey)
            assert verdict.stdout.startswith("VALID"), verdict.stdout + verdict.stderr
        finally:
            svc.db.dispose()

        accepted = _cli(config, dev_pki, "audit", "accept-restore", "--reason", "disk lost; backup of 02:00 restored")
        assert accepted.returncode == 0, accepted.stderr
        again = create_app(config)
        try:
            assert again.test_client().get("/readyz").status_code == 200
            signed = again.extensions["gateway"].checkpoints.refresh(force=True)
            assert signed.size > before.size
            with again.extensions["gateway"].db.read() as conn:
                events = conn.execute(sa.text("SELECT event FROM audit_search")).scalars().all()
            assert "audit.restore-accepted" in events
        finally:
            again.extensions["gateway"].db.dispose()


def _entries(app, n: int) -> None:  # type: ignore[no-untyped-def]
    from gateway.audit.log import AuditEvent

    svc = app.extensions["gateway"]
    for i in range(n):
        svc.audit.record(svc.db, AuditEvent(event="test.entry", outcome="ok", reason=f"entry {i} {uuid.uuid4()}"))


def test_outside_demo_mode_no_other_history_is_signed_under_the_published_origin(sqlite_url, dev_pki, tmp_path):
    """Review finding: a database rewritten from entry 0 (or a fresh one with the same keys/) got signed."""
    keys = tmp_path / "keys"
    shutil.copytree(dev_pki.keys_dir, keys)
    production = dataclasses.replace(make_config(sqlite_url, dev_pki, demo=False), keys_dir=keys)
    first = create_app(production)
    _entries(first, 8)
    published = first.extensions["gateway"].checkpoints.refresh(force=True)
    first.extensions["gateway"].db.dispose()

    for entries in (3, published.size, published.size + 5):  # shorter, as long, longer: none extends it
        other = f"sqlite:///{tmp_path / f'other-{entries}.db'}"
        upgrade(other)
        second = create_app(dataclasses.replace(production, database_url=other))
        try:
            _entries(second, entries)
            with pytest.raises(LogInconsistent, match="published checkpoint"):
                second.extensions["gateway"].checkpoints.refresh(force=True)
            assert second.test_client().get("/readyz").get_json()["checks"]["audit_log"] is False
        finally:
            second.extensions["gateway"].db.dispose()


def test_in_demo_mode_a_database_swapped_behind_the_gateways_back_is_not_signed_until_init_makes_it_new(
    sqlite_url, dev_pki, tmp_path
):
    """Issue 13: with database access alone, a new history (a swapped or emptied database) got signed in
    demo mode, whose record of signed checkpoints was named after the log's first entry."""
    keys = tmp_path / "keys"
    shutil.copytree(dev_pki.keys_dir, keys)
    demo = dataclasses.replace(make_config(sqlite_url, dev_pki), keys_dir=keys, audit_state_dir=None)
    first = create_app(demo)
    register_agencies(first.extensions["gateway"], dev_pki)
    _submit(first, dev_pki, 1)
    published = first.extensions["gateway"].checkpoints.refresh(force=True)
    first.extensions["gateway"].db.dispose()

    swapped = tmp_path / "swapped.db"
    upgrade(f"sqlite:///{swapped}")
    config = dataclasses.replace(demo, database_url=f"sqlite:///{swapped}")
    second = create_app(config)
    try:
        register_agencies(second.extensions["gateway"], dev_pki)
        _entries(second, published.size + 3)
        with pytest.raises(LogInconsistent, match="published checkpoint"):
            second.extensions["gateway"].checkpoints.refresh(force=True)
        assert second.test_client().get("/readyz").get_json()["checks"]["audit_log"] is False
    finally:
        second.extensions["gateway"].db.dispose()
    assert _cli(config, dev_pki, "init", "--demo").returncode == 0  # not new: the record stays
    assert list((keys / "published-checkpoints").glob("origin-*.json"))

    fresh = dataclasses.replace(demo, database_url=f"sqlite:///{tmp_path / 'fresh.db'}")
    made = _cli(fresh, dev_pki, "init", "--demo")  # the operator, with the keys folder, starts a new demo log
    assert made.returncode == 0 and "was set aside" in made.stdout, made.stdout + made.stderr
    third = create_app(fresh)
    try:
        register_agencies(third.extensions["gateway"], dev_pki)
        _entries(third, 2)
        assert third.extensions["gateway"].checkpoints.refresh(force=True).size > 0
    finally:
        third.extensions["gateway"].db.dispose()
    assert list((keys / "published-checkpoints").glob("origin-*.superseded-*"))


def test_a_database_that_renames_its_log_gets_no_fresh_record_of_signed_checkpoints(sqlite_url, dev_pki, tmp_path):
    """The log's name is read from its newest stored checkpoint, which anyone with the database can write:
    a new name must not buy a new, empty record (and so a new history) from the signer."""
    from gateway.store.tables import audit_checkpoints

    config = make_config(sqlite_url, dev_pki, demo=False)
    first = create_app(config)
    _entries(first, 4)
    published = first.extensions["gateway"].checkpoints.refresh(force=True)
    first.extensions["gateway"].db.dispose()

    swapped = f"sqlite:///{tmp_path / 'renamed.db'}"
    upgrade(swapped)
    db = create_app(dataclasses.replace(config, database_url=swapped)).extensions["gateway"].db
    with db.write() as conn:  # an unsigned checkpoint row naming another log: only its first line is read
        conn.execute(
            sa.insert(audit_checkpoints).values(size=0, root=b"\0" * 32, note="evil.example/audit\n0\n", created_us=0)
        )
    db.dispose()
    second = create_app(dataclasses.replace(config, database_url=swapped))
    try:
        assert second.extensions["gateway"].checkpoints.origin == "evil.example/audit"
        _entries(second, published.size + 2)
        with pytest.raises(LogInconsistent, match="last signed for the log"):
            second.extensions["gateway"].checkpoints.refresh(force=True)
    finally:
        second.extensions["gateway"].db.dispose()
