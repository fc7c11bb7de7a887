"""Only the signer holds the checkpoint key: other processes read its public verifier keys and wait for it."""

from __future__ import annotations

import threading

import pytest

from gateway import create_app
from gateway.audit.checkpoint import NoteVerifier
from gateway.audit.receipt import verify_receipt
from gateway.audit.signer import CheckpointSigner
from tests.conftest import make_config, register_agencies
from tests.support import HCM, GatewayClient, sample


@pytest.fixture
def split(sqlite_url, dev_pki, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A signing process and a web process without the key, on one database."""
    vkeys = tmp_path / "audit-log.vkeys"
    state = tmp_path / "signer-state"
    signing = create_app(make_config(sqlite_url, dev_pki, audit_vkeys=vkeys, audit_state_dir=state))
    register_agencies(signing.extensions["gateway"], dev_pki)

    import gateway.keys

    real = gateway.keys.load_ed25519_key

    def refuse_the_audit_key(path):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a process that does not sign read {path}")

    monkeypatch.setattr(gateway.keys, "load_ed25519_key", refuse_the_audit_key)
    web = create_app(
        make_config(
            sqlite_url, dev_pki, audit_vkeys=vkeys, signs_checkpoints=False, audit_key=tmp_path / "not-here.key"
        )
    )
    monkeypatch.setattr(gateway.keys, "load_ed25519_key", real)
    web.extensions["gateway"].checkpoints._signer_wait = 1.0
    yield signing, web
    for app in (signing, web):
        app.extensions["gateway"].db.dispose()


def test_a_process_that_does_not_sign_never_reads_the_key_and_knows_the_verifier_keys(split):
    signing, web = split
    signer, other = signing.extensions["gateway"].checkpoints, web.extensions["gateway"].checkpoints
    assert signer.signs and not other.signs
    assert other.vkey == signer.vkey and other.vkeys == signer.vkeys and other.origin == signer.origin


def test_a_receipt_waits_for_the_signer_and_says_so_clearly_when_none_runs(split, dev_pki):
    signing, web = split
    sender = GatewayClient(web.test_client(), dev_pki.agencies[HCM])
    doc = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    refused = sender.get(f"/v1/documents/{doc}/receipt")
    assert refused.status_code == 503 and refused.get_json()["code"] == "checkpoint-pending"
    assert "gateway audit signer" in refused.get_json()["detail"]
    ready = web.test_client().get("/readyz").get_json()["details"]["checkpoint_signer"]
    assert ready["signs_here"] is False and ready["unsigned_entries"] > 0

    stop = threading.Event()
    runner = threading.Thread(target=CheckpointSigner(signing.extensions["gateway"]).run, args=(stop,))
    runner.start()
    try:
        receipt = sender.get(f"/v1/documents/{doc}/receipt")
    finally:
        stop.set()
        runner.join()
    assert receipt.status_code == 200, receipt.get_json()
    verifier = NoteVerifier.parse(web.extensions["gateway"].checkpoints.vkey)
    assert verify_receipt(receipt.get_json(), verifier)["verdict"] == "valid"


def test_the_signer_refuses_to_start_without_the_key():
    class NoKey:
        class checkpoints:
            signs = False

    with pytest.raises(ValueError, match="no checkpoint key"):
        CheckpointSigner(NoKey())
