"""The audit log keeps its name (checkpoint origin) across a change of public URL, whatever keys/ allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import create_app
from gateway.audit import AuditEvent
from tests.conftest import make_config


def _origin_after_restart(database_url, dev_pki, public_url: str) -> str:  # type: ignore[no-untyped-def]
    app = create_app(make_config(database_url, dev_pki, public_url=public_url))
    try:
        svc = app.extensions["gateway"]
        svc.audit.record(svc.db, AuditEvent(event="x.y", outcome="ok"))
        return svc.checkpoints.refresh(force=True).note.split("\n", 1)[0]
    finally:
        app.extensions["gateway"].db.dispose()


def test_the_log_keeps_the_name_of_its_checkpoints_even_with_an_empty_origin_file(database_url, dev_pki):
    first = _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:8080")
    origin_file = make_config(database_url, dev_pki).audit_origin_path
    origin_file.write_text("", encoding="utf-8")  # an editor, a full disk, a `touch`
    assert _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:8085") == first
    origin_file.unlink()
    assert _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:8086") == first


def test_a_read_only_keys_folder_does_not_stop_the_gateway(database_url, dev_pki, monkeypatch):
    """The Dockerfile mounts keys/ read-only; the origin file cannot be written there, and need not be."""
    config = make_config(database_url, dev_pki)
    if config.audit_origin_path.exists():
        config.audit_origin_path.unlink()
    real_write = Path.write_text

    def read_only(self: Path, *args: object, **kwargs: object) -> int:
        if self == config.audit_origin_path:
            raise OSError(30, "Read-only file system")
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", read_only)
    origin = _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:8080")
    assert origin and not config.audit_origin_path.exists()
    assert _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:9999") == origin


@pytest.fixture(autouse=True)
def _fresh_origin(database_url, dev_pki):  # type: ignore[no-untyped-def]
    """The session's keys folder is shared: each test starts from no recorded origin."""
    path = make_config(database_url, dev_pki).audit_origin_path
    saved = path.read_text(encoding="utf-8") if path.exists() else None
    yield
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(saved, encoding="utf-8")


def test_a_process_that_names_the_log_otherwise_refuses_to_sign_rather_than_split_it(
    database_url, dev_pki, monkeypatch
):
    """Second review: a worker started while the database was away named the log after a new URL."""
    import gateway.audit.origin as origin
    from gateway.audit.checkpoints import LogInconsistent

    first = _origin_after_restart(database_url, dev_pki, "http://127.0.0.1:8080")
    path = make_config(database_url, dev_pki).audit_origin_path
    path.unlink(missing_ok=True)  # a read-only keys folder never held it
    monkeypatch.setattr(origin, "newest_checkpoint_origin", lambda db: None)  # the database was unreachable
    app = create_app(make_config(database_url, dev_pki, public_url="https://gateway.city.gov.vn"))
    try:
        svc = app.extensions["gateway"]
        svc.audit.record(svc.db, AuditEvent(event="x.y", outcome="ok"))
        with pytest.raises(LogInconsistent, match="restart it"):
            svc.checkpoints.refresh(force=True)
        with svc.db.read() as conn:
            assert svc.checkpoints.latest(conn).note.startswith(first + "\n")  # nothing signed under another name
    finally:
        app.extensions["gateway"].db.dispose()
