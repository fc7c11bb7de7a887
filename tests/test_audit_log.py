"""The stored audit log: append-only in the database, RFC 9162 roots, signed checkpoints, proofs and receipts."""

from __future__ import annotations

import base64
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway.audit import AuditEvent
from gateway.audit.checkpoint import NoteVerifier, open_checkpoint
from gateway.audit.checkpoints import LogInconsistent
from gateway.audit.log import StoredTree
from gateway.audit.merkle import LeafHashes, hash_leaf, root_hash, verify_consistency, verify_inclusion
from gateway.audit.receipt import verify_receipt
from gateway.store import upgrade
from gateway.store.db import Database
from gateway.store.tables import audit_entries
from tests.support import HCM, Q4, TAX, sample


def _send(agency, n: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    sender = agency(HCM)
    ids = []
    for i in range(n):
        data = sample("cong-van.edxml").replace(
            b"1024/UBND-VX</edXML:DocumentId>", f"{i}/UBND-VX</edXML:DocumentId>".encode()
        )
        ids.append(sender.submit(sender.keys.sign(data)).get_json()["id"])
    return ids


def _bodies(svc) -> list[bytes]:  # type: ignore[no-untyped-def]
    with svc.db.read() as conn:
        return [bytes(b) for b in conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx)).scalars()]


@pytest.mark.parametrize("table", ["audit_entries", "audit_nodes", "audit_checkpoints"])
def test_the_database_refuses_to_update_or_delete_the_log(agency, svc, table):
    _send(agency)
    svc.checkpoints.refresh(force=True)
    column = {"audit_entries": "event", "audit_nodes": "hash", "audit_checkpoints": "note"}[table]
    value = {"audit_entries": "'x'", "audit_nodes": "hash", "audit_checkpoints": "'x'"}[table]
    for statement in (f"UPDATE {table} SET {column} = {value}", f"DELETE FROM {table}"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), svc.db.write() as conn:
            conn.execute(sa.text(statement))


def test_stored_subtrees_give_the_rfc9162_root_of_the_entries(agency, svc):
    _send(agency, 3)
    bodies = _bodies(svc)
    with svc.db.read() as conn:
        tree = StoredTree(conn)
        for size in range(1, len(bodies) + 1):
            assert root_hash(tree, size) == root_hash(LeafHashes.of_entries(bodies[:size]), size)


def test_checkpoint_is_signed_current_and_verifiable_with_the_vkey(app, agency, svc):
    _send(agency, 2)
    svc.checkpoints.refresh(force=True)  # a checkpoint may otherwise be up to one second old
    note = app.test_client().get("/v1/audit/checkpoint").get_data(as_text=True)
    checkpoint = open_checkpoint(note, NoteVerifier.parse(svc.checkpoints.vkey))
    bodies = _bodies(svc)
    assert checkpoint.origin == "gateway.test/audit" and checkpoint.size == len(bodies)
    assert checkpoint.root == root_hash(LeafHashes.of_entries(bodies), len(bodies))


def test_inclusion_and_consistency_proofs_from_the_api_verify_against_checkpoints(app, agency, svc):
    client = app.test_client()
    verifier = NoteVerifier.parse(svc.checkpoints.vkey)
    _send(agency)
    first = open_checkpoint(client.get("/v1/audit/checkpoint").get_data(as_text=True), verifier)
    _send(agency, 2)
    svc.checkpoints.refresh(force=True)
    second = open_checkpoint(client.get("/v1/audit/checkpoint").get_data(as_text=True), verifier)
    assert second.size > first.size
    bodies = _bodies(svc)
    for index in range(second.size):
        proof = client.get(f"/v1/audit/proof/inclusion?index={index}&size={second.size}").get_json()["proof"]
        assert verify_inclusion(
            index, second.size, hash_leaf(bodies[index]), [base64.b64decode(p) for p in proof], second.root
        )
    proof = client.get(f"/v1/audit/proof/consistency?from={first.size}&to={second.size}").get_json()["proof"]
    assert verify_consistency(first.size, second.size, first.root, second.root, [base64.b64decode(p) for p in proof])
    for bad in ("index=9999&size=1", "index=0&size=999999", "index=x&size=1", "index=0"):
        response = client.get(f"/v1/audit/proof/inclusion?{bad}")
        assert response.status_code == 400 and response.get_json()["code"] == "invalid-request"


def test_receipt_verifies_offline_and_catches_tampering(agency, svc, tmp_path, monkeypatch):
    doc_id = _send(agency)[0]
    q4 = agency(Q4)
    assert q4.post(f"/v1/inbox/{doc_id}/ack").status_code == 200
    receipt = q4.get(f"/v1/documents/{doc_id}/receipt").get_json()
    verifier = NoteVerifier.parse(svc.checkpoints.vkey)
    report = verify_receipt(receipt, verifier)
    assert report["verdict"] == "valid", report
    assert [e.split()[2] for e in report["entries"]] == [
        "document.accepted",
        "document.routed",  # to Q4 only: the co-recipient's route is not Q4's business (issue 10, finding 8)
        "delivery.acknowledged",
    ]
    forged = json.loads(json.dumps(receipt))
    entry = json.loads(base64.b64decode(forged["entries"][0]["entry"]))
    entry["sender"] = "000.00.04.H29"
    forged["entries"][0]["entry"] = base64.b64encode(json.dumps(entry).encode()).decode()
    assert verify_receipt(forged, verifier)["verdict"] == "invalid"
    for index in ("0", 0.9, float("inf"), True):  # issue 11 review, round 2: "15" and 15.9 passed as 15, 1e999 raised
        odd = json.loads(json.dumps(receipt))
        odd["entries"][0]["index"] = index
        assert verify_receipt(odd, verifier)["code"] == "receipt-invalid"
    assert agency(TAX).get(f"/v1/documents/{doc_id}/receipt").status_code == 404

    from gateway.cli import main

    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    ok = CliRunner().invoke(main, ["audit", "verify-receipt", str(path), "--vkey", svc.checkpoints.vkey])
    assert ok.exit_code == 0 and "verdict: valid" in ok.output
    assert "['" not in ok.output and "\n  - " in ok.output  # entries one a line, not a Python list
    path.write_text(json.dumps(forged))
    bad = CliRunner().invoke(main, ["audit", "verify-receipt", str(path), "--vkey", svc.checkpoints.vkey])
    assert bad.exit_code == 1 and "not in the signed log" in bad.output


def test_the_gateway_refuses_to_sign_a_log_altered_after_a_checkpoint(sqlite_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies

    app = create_app(make_config(sqlite_url, dev_pki))
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    svc.checkpoints.refresh(force=True)
    with svc.db.write() as conn:  # an operator with database access edits history behind the triggers' back
        conn.execute(sa.text("DROP TRIGGER audit_nodes_no_update"))
        # a stored subtree that every later root is built from (leaf edits are caught by inclusion proofs instead)
        conn.execute(sa.text("UPDATE audit_nodes SET hash = :h WHERE level = 2 AND idx = 0"), {"h": b"\x00" * 32})
    with svc.db.write() as conn:
        svc.audit.append(conn, AuditEvent("test.more", "ok"))
    with pytest.raises(LogInconsistent):
        svc.checkpoints.refresh(force=True)
    svc.db.dispose()


def test_upgrading_an_existing_log_backfills_its_subtree_hashes(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    db = Database(url)
    bodies = [json.dumps({"index": i, "v": 1}).encode() for i in range(11)]
    with db.write() as conn:
        conn.execute(
            sa.text("INSERT INTO audit_entries (idx, time_us, event, body) VALUES (:i, 0, 'e', :b)"),
            [{"i": i, "b": b} for i, b in enumerate(bodies)],
        )
        conn.execute(sa.text("UPDATE audit_head SET size = 11"))
    upgrade(url)
    with db.read() as conn:
        assert root_hash(StoredTree(conn), 11) == root_hash(LeafHashes.of_entries(bodies), 11)
    db.dispose()


def test_audit_vkey_command_prints_the_verifier_key(tmp_path, monkeypatch):
    from gateway.cli import main

    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    assert CliRunner().invoke(main, ["keys", "init"]).exit_code == 0
    out = CliRunner().invoke(main, ["audit", "vkey"]).output.strip()
    assert out.startswith("gw.example/audit+") and NoteVerifier.parse(out).name == "gw.example/audit"


def test_identical_events_get_unrelated_leaf_hashes_because_each_entry_is_salted(svc):
    """A proof's sibling hash must not let anyone confirm a guessed entry (issue 13, item 7)."""
    from datetime import UTC, datetime

    from gateway.audit.log import encode_entry

    moment = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    guess = AuditEvent(event="auth.token.issued", outcome="ok", actor=HCM)
    with svc.db.write() as conn:
        first = svc.audit.append(conn, guess, now=moment)
        second = svc.audit.append(conn, guess, now=moment)
    stored = [json.loads(b) for b in _bodies(svc)[-2:]]
    assert [e["v"] for e in stored] == [2, 2]
    assert stored[0]["salt"] != stored[1]["salt"] and len(base64.urlsafe_b64decode(stored[0]["salt"] + "==")) == 16
    # Everything but the salt guessed right: the unsalted layout of the same entry does not hash to the leaf.
    for appended in (first, second):
        unsalted = encode_entry(appended.index, appended.time, guess, None)
        assert hash_leaf(unsalted) != hash_leaf(appended.body)


def test_unsalted_version_1_entries_still_verify_beside_salted_ones(agency, svc, monkeypatch, tmp_path):
    """A log begun before salting is exported and verified whole: verifiers hash bytes, never rebuild entries."""
    from gateway.audit import log
    from gateway.audit.bundle import export_bundle, verify_bundle

    monkeypatch.setattr(log, "new_salt", lambda: None)
    _send(agency, 2)
    monkeypatch.undo()
    doc_id = _send(agency)[0]
    versions = [json.loads(b)["v"] for b in _bodies(svc)]
    assert 1 in versions and versions[-1] == 2
    svc.checkpoints.refresh(force=True)
    verifier = NoteVerifier.parse(svc.checkpoints.vkey)
    with svc.db.read() as conn:
        (tmp_path / "all.zip").write_bytes(export_bundle(conn, svc.checkpoints, 0, len(versions)))
    verdict = verify_bundle(tmp_path / "all.zip", verifier)
    assert verdict.valid, verdict.detail
    receipt = agency(HCM).get(f"/v1/documents/{doc_id}/receipt").get_json()
    assert verify_receipt(receipt, verifier)["verdict"] == "valid"
