"""Auditors: role, search, export bundles verified offline, and tampering caught with where it happened."""

from __future__ import annotations

import json
import multiprocessing
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import create_app
from gateway.audit import AuditEvent, AuditLog
from gateway.audit.bundle import export_bundle, verify_bundle
from gateway.audit.checkpoint import NoteSigner, NoteVerifier
from gateway.audit.log import StoredTree
from gateway.audit.merkle import LeafHashes, root_hash
from gateway.cli import main
from gateway.store.db import Database
from gateway.store.tables import audit_entries
from tests.conftest import make_config, register_agencies
from tests.support import HCM, NOIVU, Q4, GatewayClient, reset_database, sample
from tests.test_citizen_flow import login


@pytest.fixture
def audited_app(database_url, dev_pki):  # type: ignore[no-untyped-def]
    app = create_app(make_config(database_url, dev_pki, auditors=(NOIVU,)))
    register_agencies(app.extensions["gateway"], dev_pki)
    yield app
    app.extensions["gateway"].db.dispose()


def _client(app, dev_pki, code: str) -> GatewayClient:  # type: ignore[no-untyped-def]
    client = GatewayClient(app.test_client(), dev_pki.agencies[code])
    client.token()
    return client


def _send_documents(app, dev_pki, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    sender, svc, ids = _client(app, dev_pki, HCM), app.extensions["gateway"], []
    for i in range(n):
        data = sample("cong-van.edxml").replace(
            b"1024/UBND-VX</edXML:DocumentId>", f"{i}/UBND-VX</edXML:DocumentId>".encode()
        )
        ids.append(sender.submit(sender.keys.sign(data)).get_json()["id"])
        svc.checkpoints.refresh(force=True)  # a checkpoint after every document keeps "where" precise
    return ids


def test_auditor_searches_by_agency_event_outcome_and_document_and_each_read_is_audited(audited_app, dev_pki):
    ids = _send_documents(audited_app, dev_pki, 3)
    auditor = _client(audited_app, dev_pki, NOIVU)
    hits = auditor.get(f"/v1/audit/entries?document={ids[1]}").get_json()["items"]
    assert [h["entry"]["event"] for h in hits] == ["document.accepted", "document.routed", "document.routed"]
    assert all(h["entry"]["index"] == h["index"] for h in hits)
    routed_to_q4 = auditor.get(f"/v1/audit/entries?agency={Q4}&event=document.routed").get_json()["items"]
    assert len(routed_to_q4) == 3
    page = auditor.get("/v1/audit/entries?limit=2").get_json()
    assert len(page["items"]) == 2 and page["next_after"] == page["items"][1]["index"]
    assert auditor.get("/v1/audit/entries?from=2026-01-01T00:00:00Z&to=2000-01-01T00:00:00Z").get_json()["items"] == []
    assert auditor.get("/v1/audit/entries?from=yesterday").status_code == 400
    reads = auditor.get("/v1/audit/entries?event=auditor.search").get_json()["items"]
    assert len(reads) == 4 and all(r["entry"]["actor"] == NOIVU for r in reads)  # this search is recorded after it


def test_non_auditors_are_refused_and_the_refusal_is_audited(audited_app, dev_pki):
    outsider = _client(audited_app, dev_pki, Q4)
    refused = outsider.get("/v1/audit/entries")
    assert refused.status_code == 403 and refused.get_json()["code"] == "not-an-auditor"
    auditor = _client(audited_app, dev_pki, NOIVU)
    assert auditor.get("/v1/audit/entries?event=auditor.refused").get_json()["items"]
    assert audited_app.test_client().get("/v1/audit/entries").status_code == 401


def test_auditor_logs_in_with_national_identity(app):
    """Demo mode: the development provider's Lê Minh Châu is an auditor, Nguyễn Văn An is not."""
    client = app.test_client()
    chau, an = login(client, 2), login(client, 0)
    ok = client.get("/v1/audit/entries?limit=1", headers={"Authorization": f"Bearer {chau['access_token']}"})
    assert ok.status_code == 200 and ok.get_json()["items"]
    refused = client.get("/v1/audit/entries", headers={"Authorization": f"Bearer {an['access_token']}"})
    assert refused.status_code == 403
    reads = client.get(
        "/v1/audit/entries?event=auditor.search", headers={"Authorization": f"Bearer {chau['access_token']}"}
    )
    assert reads.get_json()["items"][0]["entry"]["actor"].startswith("citizen:")  # a keyed hash, never the number


def test_exported_bundle_verifies_offline_from_the_start_and_from_the_middle(audited_app, dev_pki, tmp_path):
    _send_documents(audited_app, dev_pki, 3)
    svc = audited_app.extensions["gateway"]
    auditor = _client(audited_app, dev_pki, NOIVU)
    response = auditor.get("/v1/audit/export?from=2000-01-01T00:00:00Z")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    (tmp_path / "all.zip").write_bytes(response.data)
    verifier = NoteVerifier.parse(svc.checkpoints.vkey)
    assert verify_bundle(tmp_path / "all.zip", verifier).valid
    with svc.db.read() as conn:
        (tmp_path / "middle.zip").write_bytes(export_bundle(conn, svc.checkpoints, 7, 12))
    verdict = verify_bundle(tmp_path / "middle.zip", verifier)
    assert verdict.valid, verdict.detail
    result = CliRunner().invoke(main, ["audit", "verify", str(tmp_path / "middle.zip"), "--vkey", svc.checkpoints.vkey])
    assert result.exit_code == 0 and result.output.startswith("VALID")
    other = NoteVerifier.parse(NoteSigner("gateway.test/audit", Ed25519PrivateKey.generate()).vkey)
    assert "signature" in verify_bundle(tmp_path / "all.zip", other).detail


@pytest.mark.parametrize(
    "doctor",
    ["manifest-list", "from-infinite", "entry-list", "bad-deflate"],
)
def test_a_doctored_bundle_is_an_invalid_verdict_not_a_traceback(audited_app, dev_pki, tmp_path, doctor):
    """Issue 11 review, round 2: a list for the manifest, 1e999 for an index or a broken deflate stream raised."""
    import zipfile

    _send_documents(audited_app, dev_pki, 1)
    svc = audited_app.extensions["gateway"]
    with svc.db.read() as conn:
        original = export_bundle(conn, svc.checkpoints, 0, 3)
    (tmp_path / "good.zip").write_bytes(original)
    doctored = tmp_path / "doctored.zip"
    with zipfile.ZipFile(tmp_path / "good.zip") as good, zipfile.ZipFile(doctored, "w", zipfile.ZIP_DEFLATED) as bad:
        for info in good.infolist():
            data = good.read(info)
            if info.filename == "manifest.json" and doctor == "manifest-list":
                data = b"[1]"
            elif info.filename == "manifest.json" and doctor == "from-infinite":
                data = data.replace(b'"from_index": 0', b'"from_index": 1e999').replace(
                    b'"from_index":0', b'"from_index":1e999'
                )
            elif info.filename.startswith("entries") and doctor == "entry-list":
                data = b"[1, 2]\n" + data
            bad.writestr(info.filename, data)
    if doctor == "bad-deflate":
        raw = bytearray((tmp_path / "good.zip").read_bytes())
        start = raw.find(b"entries")
        raw[start + 60 : start + 90] = b"\xff" * 30
        doctored.write_bytes(bytes(raw))
    verdict = verify_bundle(doctored, NoteVerifier.parse(svc.checkpoints.vkey))
    assert not verdict.valid and verdict.detail
    result = CliRunner().invoke(main, ["audit", "verify", str(doctored), "--vkey", svc.checkpoints.vkey])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.startswith("INVALID")


@contextmanager
def triggers_bypassed(db: Database):  # type: ignore[no-untyped-def]
    """What an operator with database access could do: switch the append-only triggers off."""
    with db.write() as conn:
        if db.is_sqlite:
            for action in ("update", "delete"):
                conn.execute(sa.text(f"DROP TRIGGER audit_entries_no_{action}"))
        else:
            conn.execute(sa.text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only"))
    try:
        with db.write() as conn:
            yield conn
    finally:
        if not db.is_sqlite:
            with db.write() as conn:
                conn.execute(sa.text("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only"))


def _verify_export(app, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    svc = app.extensions["gateway"]
    with svc.db.read() as conn:
        size = conn.execute(sa.select(sa.func.max(audit_entries.c.idx))).scalar_one() + 1
        (tmp_path / "b.zip").write_bytes(export_bundle(conn, svc.checkpoints, 0, size))
    verdict = verify_bundle(tmp_path / "b.zip", NoteVerifier.parse(svc.checkpoints.vkey))
    assert not verdict.valid
    return verdict.detail


def test_an_edited_entry_is_caught_and_located(audited_app, dev_pki, tmp_path):
    _send_documents(audited_app, dev_pki, 3)
    with triggers_bypassed(audited_app.extensions["gateway"].db) as conn:
        body = conn.execute(sa.select(audit_entries.c.body).where(audit_entries.c.idx == 10)).scalar_one()
        conn.execute(
            sa.update(audit_entries)
            .where(audit_entries.c.idx == 10)
            .values(body=bytes(body).replace(b'"outcome":"accepted"', b'"outcome":"refused"'))
        )
    detail = _verify_export(audited_app, tmp_path)
    low, high = (int(x) for x in detail.split("between ")[1].split(" was")[0].split(" and "))
    assert low <= 10 <= high and high - low < 4, detail


def test_deleted_newest_entries_are_caught(audited_app, dev_pki, tmp_path):
    _send_documents(audited_app, dev_pki, 2)
    with triggers_bypassed(audited_app.extensions["gateway"].db) as conn:
        newest = conn.execute(sa.select(sa.func.max(audit_entries.c.idx))).scalar_one()
        conn.execute(sa.delete(audit_entries).where(audit_entries.c.idx >= newest - 1))
    detail = _verify_export(audited_app, tmp_path)
    assert f"entries {newest - 1}..{newest} are missing" in detail, detail


def test_two_reordered_entries_are_caught_and_located(audited_app, dev_pki, tmp_path):
    _send_documents(audited_app, dev_pki, 2)
    with triggers_bypassed(audited_app.extensions["gateway"].db) as conn:
        for old, new in ((8, -1), (9, 8), (-1, 9)):
            conn.execute(sa.update(audit_entries).where(audit_entries.c.idx == old).values(idx=new))
    detail = _verify_export(audited_app, tmp_path)
    assert "position 8 says index 9" in detail, detail


def _append_many(url: str, n: int) -> None:
    db, log = Database(url), AuditLog()
    for i in range(n):
        with db.write() as conn:
            log.append(conn, AuditEvent("test.process", "ok", actor=f"p{i}"))
    db.dispose()


def test_several_processes_appending_on_postgresql_give_a_gap_free_consistent_log(postgres_url):
    db = Database(postgres_url)
    reset_database(db)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(postgres_url, 40)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with db.read() as conn:
        rows = conn.execute(sa.select(audit_entries.c.idx, audit_entries.c.body).order_by(audit_entries.c.idx)).all()
        stored_root = root_hash(StoredTree(conn), len(rows))
    assert [r.idx for r in rows] == list(range(160))
    assert [json.loads(r.body)["index"] for r in rows] == list(range(160))
    times = [json.loads(r.body)["time"] for r in rows]
    assert times == sorted(times)
    assert stored_root == root_hash(LeafHashes.of_entries([bytes(r.body) for r in rows]), len(rows))
    reset_database(db)
    db.dispose()


def test_processing_statistics_count_received_done_on_time_late_and_refused(audited_app, dev_pki):
    from tests.support import status_message

    ids = _send_documents(audited_app, dev_pki, 2)  # cong-van: due 2020/03/31, so anything done now is late
    q4 = _client(audited_app, dev_pki, Q4)
    q4.post(f"/v1/inbox/{ids[0]}/ack")
    view = q4.get(f"/v1/documents/{ids[0]}").get_json()
    assert q4.submit(q4.keys.sign(status_message(view["document_id"], HCM, Q4, "06")), "/v1/status").status_code == 202
    sender = _client(audited_app, dev_pki, HCM)
    assert sender.submit(b"<broken").status_code == 400
    auditor = _client(audited_app, dev_pki, NOIVU)
    figures = {a["agency"]: a for a in auditor.get("/v1/audit/statistics").get_json()["agencies"]}
    assert {k: figures[Q4][k] for k in ("received", "acknowledged", "done", "on_time", "late", "overdue_open")} == {
        "received": 2,
        "acknowledged": 1,
        "done": 1,
        "on_time": 0,
        "late": 1,
        "overdue_open": 1,
    }
    assert figures[Q4]["done_rate"] == 0.5 and figures[HCM]["refused_sent"] == 1
    csv_text = auditor.get("/v1/audit/statistics?format=csv").get_data(as_text=True)
    assert not csv_text.startswith("\ufeff")  # for scripts: no byte order mark
    assert csv_text.splitlines()[0].startswith('"agency","received","acknowledged","done","on_time","late"')
    assert any(line.startswith(f'"{Q4}",2,1,1,0,1,1') for line in csv_text.splitlines())


def test_roles_need_a_level_2_login_and_an_enabled_agency(audited_app, app, dev_pki):
    """Issue 10, finding 8: level-1 identities held the auditor role, and a disabled agency kept it."""
    client = app.test_client()
    level_1 = login(client, 2, level=1)  # Lê Minh Châu, the demo auditor, logged in at level 1
    refused = client.get("/v1/audit/entries", headers={"Authorization": f"Bearer {level_1['access_token']}"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "level-insufficient"
    auditor = _client(audited_app, dev_pki, NOIVU)
    assert auditor.get("/v1/audit/entries?limit=1").status_code == 200
    svc = audited_app.extensions["gateway"]
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, NOIVU, False)
    assert auditor.get("/v1/audit/entries?limit=1").status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "to=9999-12-31",
        "from=0001-01-01",
        "from=0001-01-01T00:00:00%2B23:59",
        "to=9999-12-31T23:59:59-23:59",
        "from=2026-01-01T00:00:00%2B23:59&to=2026-01-02T00:00:00-23:59",
        "from=1969-12-31T23:59:59Z",
        "from=2026-12-01&to=2026-01-01",
    ],
)
@pytest.mark.parametrize("path", ["/v1/audit/entries", "/v1/audit/statistics", "/v1/audit/export"])
def test_dates_at_the_ends_of_the_calendar_get_an_answer_never_a_500(audited_app, dev_pki, path, query):
    """Issue 10, finding 7: to=9999-12-31, from=0001-01-01 and offsets of +23:59 crashed these endpoints."""
    auditor = _client(audited_app, dev_pki, NOIVU)
    response = auditor.get(f"{path}?{query}")
    assert response.status_code in (200, 400, 404), response.get_data(as_text=True)[:200]
    if response.status_code != 200:
        assert response.mimetype == "application/problem+json"


def _rewritten(bundle: Path, out: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """What someone holding a bundle can do: change its files and write the manifest's sums to match."""
    import hashlib
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    change(files, manifest)
    manifest["sha256"] = {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())}
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest))
    return out


def _entry_lines(files: dict[str, bytes]) -> list[bytes]:
    return [line for line in files["entries.jsonl"].split(b"\n") if line]


def _put_lines(files: dict[str, bytes], lines: list[bytes]) -> None:
    files["entries.jsonl"] = b"".join(line + b"\n" for line in lines)


def _unsigned_entry(index: int) -> bytes:
    return json.dumps({"index": index, "time": "2999-01-01T00:00:00.000000Z", "event": "x"}).encode()


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (  # unsigned entries after the last checkpoint, the manifest's range left as it was
            lambda files, m: _put_lines(files, [*_entry_lines(files), _unsigned_entry(m["to_index"])]),
            "past the last signed checkpoint",
        ),
        (  # an index repeated
            lambda files, m: _put_lines(files, [*(lines := _entry_lines(files))[:3], lines[2], *lines[3:-1]]),
            "says index",
        ),
        (  # an index skipped
            lambda files, m: _put_lines(files, [*(lines := _entry_lines(files))[:3], *lines[4:]]),
            "says index",
        ),
        (  # entries starting before the first index the bundle covers
            lambda files, m: _put_lines(files, [_unsigned_entry(m["from_index"] - 1), *_entry_lines(files)]),
            "says index",
        ),
        (  # a checkpoint no consistency proof ties to the others
            lambda files, m: files.__setitem__(
                "consistency.json", json.dumps(json.loads(files["consistency.json"])[1:]).encode()
            ),
            "no consistency proof ties",
        ),
    ],
    ids=["beyond-last-checkpoint", "repeated", "skipped", "before-first", "unchained-checkpoint"],
)
def test_a_bundle_whose_entries_are_not_exactly_the_signed_range_is_invalid(
    audited_app, dev_pki, tmp_path, tamper, reason
):
    _send_documents(audited_app, dev_pki, 3)
    svc = audited_app.extensions["gateway"]
    with svc.db.read() as conn:
        (tmp_path / "b.zip").write_bytes(export_bundle(conn, svc.checkpoints, 4, 12))
    verifier = NoteVerifier.parse(svc.checkpoints.vkey)
    assert verify_bundle(tmp_path / "b.zip", verifier).valid
    verdict = verify_bundle(_rewritten(tmp_path / "b.zip", tmp_path / "t.zip", tamper), verifier)
    assert not verdict.valid and reason in verdict.detail, verdict.detail
    result = CliRunner().invoke(main, ["audit", "verify", str(tmp_path / "t.zip"), "--vkey", svc.checkpoints.vkey])
    assert result.exit_code != 0 and result.output.startswith("INVALID"), result.output
