"""The national SDK's endpoints under /vxp/: a system built on the SDK sends and receives unchanged."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.store.tables import audit_entries, routes
from tests.sdk_client import VIETNAM, SdkClient
from tests.support import HCM, NOIVU, Q4, sample, snapshot, status_message, summarise_refusals


@pytest.fixture
def systems(app, svc, dev_pki):  # type: ignore[no-untyped-def]
    """HCM's and District 4's document systems, each with the credentials the CLI would issue."""
    with svc.db.write() as conn:
        hcm = svc.vxp_credentials.issue(conn, HCM)
        q4 = svc.vxp_credentials.issue(conn, Q4)
    http = app.test_client()
    return SdkClient(http, hcm.systemid, hcm.secret), SdkClient(http, q4.systemid, q4.secret)


def _signed(dev_pki, number: int = 1024) -> bytes:  # type: ignore[no-untyped-def]
    data = sample("cong-van.edxml").replace(b"1024/UBND-VX</", f"{number}/UBND-VX</".encode())
    return dev_pki.agencies[HCM].sign(data)


def test_every_method_works_for_a_system_built_on_the_sdk(systems, svc, dev_pki):
    hcm, q4 = systems
    document = _signed(dev_pki)
    sent = hcm.send_edoc(document, sender=HCM)
    assert sent["status"] == "OK" and sent["ErrorCode"] == "0", sent
    doc_id = sent["DocId"]
    waiting = q4.json("getReceivedEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}, body=b"")
    assert [(i["docId"], i["from"], i["to"], i["messageType"]) for i in waiting["data"]] == [(doc_id, HCM, Q4, "edoc")]
    assert all(v is not None for i in waiting["data"] for v in i.values())  # the SDK's getAsString throws on null
    assert q4.json("countReceiveEdoc", {})["count"] == 1
    got = q4.json("getEdoc", {"docId": doc_id})
    assert base64.b64decode(got["data"]) == document
    assert q4.call("downloadEdoc", {"docId": doc_id}, get=True).data == document
    assert q4.json("updateStatus", {"docId": doc_id, "status": "done"})["status"] == "OK"
    assert q4.json("countReceiveEdoc", {})["count"] == 0
    with svc.db.read() as conn:
        state = conn.execute(sa.select(routes.c.state).where(routes.c.document == doc_id, routes.c.recipient == Q4))
        assert state.scalar_one() == "acknowledged"
    sent_list = hcm.json("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}, body=b"")["data"]
    assert {(i["toCode"], i["receiveStatus"]) for i in sent_list} == {(Q4, "done"), (NOIVU, "inbox")}
    answer = dev_pki.agencies[Q4].sign(status_message(f"{HCM},2020/03/05,1024/UBND-VX", HCM, Q4, "03"))
    status = q4.send_edoc(answer, sender=Q4, message_type="status")
    assert status["status"] == "OK", status
    assert hcm.json("countReceiveStatus", {})["count"] == 1
    statuses = hcm.json("getReceivedEdocList", {"servicetype": "eDoc", "messagetype": "status"}, body=b"")["data"]
    assert [i["docId"] for i in statuses] == [status["DocId"]]
    agencies = q4.json("getAgenciesList", {}, body=b"")["data"]
    assert HCM in {a["code"] for a in agencies}


def test_the_leading_zero_quirk_of_hash_file_is_accepted(systems, dev_pki):
    hcm, _ = systems
    document = next(d for n in range(2000, 2200) if min(hashlib.sha256(d := _signed(dev_pki, n)).digest()) < 0x10)
    assert len("".join(format(b, "x") for b in hashlib.sha256(document).digest())) < 64
    assert hcm.send_edoc(document, sender=HCM)["status"] == "OK"


def test_every_refusal_is_a_fail_answer_with_its_code_and_changes_nothing(app, systems, svc, dev_pki):
    hcm, _ = systems
    before = snapshot(svc.db)
    wrong_secret = SdkClient(app.test_client(), hcm.systemid, "not-the-secret")
    stale = SdkClient(app.test_client(), hcm.systemid, hcm.secret, created=datetime.now(VIETNAM) - timedelta(hours=2))
    unknown = SdkClient(app.test_client(), "000.00.77.H29", hcm.secret)
    for client, why in ((wrong_secret, "hash-header"), (stale, "window"), (unknown, "unknown systemid")):
        answer = client.send_edoc(_signed(dev_pki), sender=HCM)
        assert answer["status"] == "FAIL" and answer["ErrorCode"] == "401" and why in answer["ErrorDesc"], answer
    summarise_refusals(svc)
    after = snapshot(svc.db)
    assert after["documents"] == before["documents"]
    bad_hash = hcm.headers({"from": HCM, "servicetype": "eDoc", "messagetype": "edoc", "hash-file": "00"}, "x")
    answer = app.test_client().post("/vxp/sendEdoc", data=_signed(dev_pki) + b"\r\n", headers=bad_hash).get_json()
    assert answer["status"] == "FAIL" and "hash-file" in answer["ErrorDesc"]
    unsigned = hcm.send_edoc(sample("cong-van.edxml"), sender=HCM)
    assert unsigned["status"] == "FAIL" and unsigned["ErrorCode"] == "signature-missing"
    with svc.db.read() as conn:
        events = [r for r in conn.execute(sa.select(audit_entries.c.event)).scalars()]
    assert "document.refused" in events and "vxp.refused" in events


def test_a_replayed_signature_is_refused_on_calls_that_change_something(app, systems, dev_pki):
    hcm, q4 = systems
    document = _signed(dev_pki)
    args = {
        "from": HCM,
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "hash-file": "".join(format(b, "x") for b in hashlib.sha256(document).digest()),
    }
    headers = hcm.headers(args, "application/octet-stream")
    first = app.test_client().post("/vxp/sendEdoc", data=document + b"\r\n", headers=headers).get_json()
    again = app.test_client().post("/vxp/sendEdoc", data=document + b"\r\n", headers=headers).get_json()
    assert first["status"] == "OK" and again["status"] == "FAIL" and "already received" in again["ErrorDesc"]
    # A repeated read is the SDK's normal poll (its timestamp is fixed per service object): answered.
    poll = {"servicetype": "eDoc", "messagetype": "edoc"}
    assert q4.json("countReceiveEdoc", poll)["status"] == q4.json("countReceiveEdoc", poll)["status"] == "OK"


def test_an_oversize_document_is_a_fail_answer_not_an_error_page(database_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies

    app = create_app(make_config(database_url, dev_pki, max_document_bytes=4096))
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    with svc.db.write() as conn:
        hcm = svc.vxp_credentials.issue(conn, HCM)
    client = SdkClient(app.test_client(), hcm.systemid, hcm.secret)
    answer = client.send_edoc(b"<x>" + b"a" * 200_000 + b"</x>", sender=HCM)
    svc.db.dispose()
    assert answer["status"] == "FAIL" and answer["ErrorCode"] in ("413", "too-large"), answer


def test_credentials_are_issued_once_by_the_cli_and_stored_sealed(app, svc):
    import json

    from click.testing import CliRunner

    from gateway.store.tables import vxp_credentials

    with svc.db.write() as conn:
        issued = svc.vxp_credentials.issue(conn, Q4)
    with svc.db.read() as conn:
        sealed = conn.execute(sa.select(vxp_credentials.c.secret_sealed)).scalar_one()
    assert issued.secret.encode() not in bytes(sealed)
    assert svc.vxp_credentials.lookup(Q4).secret == issued.secret  # type: ignore[union-attr]
    with svc.db.write() as conn:
        renewed = svc.vxp_credentials.issue(conn, Q4)
    assert renewed.secret != issued.secret and svc.vxp_credentials.lookup(Q4).secret == renewed.secret  # type: ignore[union-attr]
    assert json and CliRunner
