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


def _raw_call(app, path: str, headers: dict[str, str], body: bytes = b"{}") -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = app.test_client().post(path, data=body, headers=headers)
    assert response.status_code == 200 and response.is_json, (response.status_code, response.data[:200])
    return dict(response.get_json())


@pytest.mark.parametrize(
    "sign_header",
    [
        "[" * 5000,  # deeper than the JSON parser's recursion limit
        '{"XroadVnpt-systemid":"\\ud800"}',  # a lone surrogate the database cannot encode
        '{"XroadVnpt-systemid":"a\\u0000b"}',  # NUL, which PostgreSQL text cannot hold
        '{"XroadVnpt-systemid":"000.00.00.H29","XroadVnpt-systemid":"000.00.04.H29"}',  # one name signed twice
        "{" + ",".join(f'"XroadVnpt-k{i}":"v"' for i in range(3000)) + "}",  # oversize
    ],
)
def test_a_malformed_signature_is_a_fail_answer_never_a_server_error(app, svc, sign_header):
    answer = _raw_call(
        app, "/vxp/countReceiveEdoc", {"XroadVnpt-sign-header": sign_header, "XroadVnpt-hash-header": "00"}
    )
    assert answer["status"] == "FAIL" and answer["ErrorCode"] == "401", answer
    assert summarise_refusals(svc) == 1  # counted like every unauthenticated refusal


def test_a_signed_timestamp_out_of_the_calendar_is_refused(app, systems):
    hcm, _ = systems
    broken = SdkClient(app.test_client(), hcm.systemid, hcm.secret)
    broken.timestamp = "31129999T235959+9999"
    assert broken.json("countReceiveEdoc", {})["status"] == "FAIL"


def test_headers_signed_for_a_change_do_not_also_read(app, systems, svc, dev_pki):
    """Review: updateStatus's single-use headers replayed to getEdoc and downloadEdoc returned the document."""
    hcm, q4 = systems
    doc_id = hcm.send_edoc(_signed(dev_pki), sender=HCM)["DocId"]
    update = q4.headers({"docId": doc_id, "status": "done"}, "application/json")
    for path in ("/vxp/getEdoc", "/vxp/countReceiveEdoc"):
        assert _raw_call(app, path, dict(update))["status"] == "FAIL"
    assert app.test_client().get("/vxp/downloadEdoc", headers=update).get_json()["status"] == "FAIL"


def test_sendedoc_through_the_facade_keeps_the_agency_rate_limit(database_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies

    app = create_app(make_config(database_url, dev_pki, agency_submissions_per_minute=1))
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    with svc.db.write() as conn:
        hcm = svc.vxp_credentials.issue(conn, HCM)
    client = SdkClient(app.test_client(), hcm.systemid, hcm.secret)
    first = client.send_edoc(_signed(dev_pki, 3001), sender=HCM)
    second = client.send_edoc(_signed(dev_pki, 3002), sender=HCM)
    svc.db.dispose()
    assert first["status"] == "OK" and second["status"] == "FAIL" and second["ErrorCode"] == "rate-limited"


def test_refusals_of_an_authenticated_system_are_audited_naming_it(app, systems, svc, dev_pki):
    import json

    hcm, q4 = systems
    bad_hash = hcm.headers({"from": HCM, "servicetype": "eDoc", "messagetype": "edoc", "hash-file": "00"}, "x")
    assert _raw_call(app, "/vxp/sendEdoc", dict(bad_hash), _signed(dev_pki) + b"\r\n")["status"] == "FAIL"
    assert q4.json("getEdoc", {"docId": "00000000-0000-0000-0000-000000000000"})["status"] == "FAIL"
    with svc.db.read() as conn:
        bodies = [json.loads(b) for b in conn.execute(sa.select(audit_entries.c.body)).scalars()]
    refused = [(e["actor"], e["code"]) for e in bodies if e["event"] == "vxp.refused"]
    assert (HCM, "vxp-400") in refused and (Q4, "vxp-document-not-found") in refused


def test_a_vietnamese_description_signed_as_utf8_is_accepted(systems, dev_pki):
    hcm, q4 = systems
    doc_id = hcm.send_edoc(_signed(dev_pki, 3003), sender=HCM)["DocId"]
    answer = q4.json("updateStatus", {"docId": doc_id, "status": "fail", "description": "Sai thể thức văn bản"})
    assert answer["status"] == "OK", answer


def test_a_sealed_secret_opens_only_for_its_systemid_and_agency(svc):
    from gateway.store.tables import vxp_credentials

    with svc.db.write() as conn:
        svc.vxp_credentials.issue(conn, Q4)
        conn.execute(sa.update(vxp_credentials).where(vxp_credentials.c.systemid == Q4).values(agency=HCM))
    assert svc.vxp_credentials.lookup(Q4) is None


def test_a_from_that_is_not_the_calling_system_is_refused_as_the_axis_refuses_it(systems, dev_pki):
    hcm, _ = systems
    answer = hcm.send_edoc(_signed(dev_pki, 3004), sender=Q4)
    assert answer["status"] == "FAIL" and answer["ErrorCode"] == "403" and "from" in answer["ErrorDesc"]


def test_the_counts_count_everything_waiting_not_one_page_of_it(systems, dev_pki, monkeypatch):
    from gateway.routing import inbox

    hcm, q4 = systems
    for n in (3005, 3006):
        assert hcm.send_edoc(_signed(dev_pki, n), sender=HCM)["status"] == "OK"
    monkeypatch.setattr(inbox, "MAX_PAGE", 1)  # a page of one: a count taken from the list would say 1
    assert q4.json("countReceiveEdoc", {})["count"] == 2
