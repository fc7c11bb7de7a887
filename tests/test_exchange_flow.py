"""The core exchange over HTTP, on SQLite and PostgreSQL: submit, inbox, content, seal, status, ack."""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa

from gateway.documents.offline import verify_offline
from gateway.store.tables import audit_entries
from tests.support import HCM, NOIVU, Q4, Q11, TAX, sample


def test_signed_document_reaches_every_recipient_with_exact_bytes_and_a_verifiable_seal(agency, svc, dev_pki):
    sender, q4, noivu = agency(HCM), agency(Q4), agency(NOIVU)
    signed = sender.keys.sign(sample("cong-van.edxml"))

    accepted = sender.submit(signed)
    assert accepted.status_code == 202, accepted.get_json()
    body = accepted.get_json()
    assert body["recipients"] == [Q4, NOIVU]
    assert body["audit_index"] >= 0
    doc_id = body["id"]

    for recipient in (q4, noivu):
        inbox = recipient.get("/v1/inbox").get_json()
        assert [item["id"] for item in inbox["items"]] == [doc_id]
        content = recipient.get(f"/v1/documents/{doc_id}/content")
        assert content.data == signed  # forwarded byte-for-byte as signed
        seal = recipient.get(f"/v1/documents/{doc_id}/seal").data
        report = verify_offline(content.data, [dev_pki.ca.cert], seal=seal, gateway_certs=svc.keys.seal_chain)
        assert report["verdict"] == "valid", report
        assert report["seal"]["audit_index"] == body["audit_index"]
        assert report["seal"]["recipients"] == [Q4, NOIVU]


def test_status_reply_reaches_the_original_sender_and_shows_in_the_history(agency):
    sender, q4 = agency(HCM), agency(Q4)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]

    reply = q4.submit(q4.keys.sign(sample("status-03.edxml")), "/v1/status")
    assert reply.status_code == 202, reply.get_json()
    assert reply.get_json()["recipients"] == [HCM]

    items = sender.get("/v1/inbox").get_json()["items"]
    assert [(i["kind"], i["status_code"], i["response_for"]) for i in items] == [("status", "03", doc_id)]
    history = sender.get(f"/v1/documents/{doc_id}").get_json()["statuses"]
    assert [(s["from"], s["status_code"], s["meaning"]) for s in history] == [(Q4, "03", "accepted")]


def test_acknowledged_documents_leave_the_inbox_and_ack_is_idempotent(agency, svc):
    sender, q4 = agency(HCM), agency(Q4)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]

    first = q4.post(f"/v1/inbox/{doc_id}/ack")
    again = q4.post(f"/v1/inbox/{doc_id}/ack")
    assert first.status_code == again.status_code == 200
    assert first.get_json()["acknowledged_at"] == again.get_json()["acknowledged_at"]
    assert q4.get("/v1/inbox").get_json()["items"] == []
    recipients = {r["agency"]: r["state"] for r in sender.get(f"/v1/documents/{doc_id}").get_json()["recipients"]}
    assert recipients == {Q4: "acknowledged", NOIVU: "pending"}
    with svc.db.read() as conn:
        acks = conn.execute(sa.select(sa.func.count()).where(audit_entries.c.event == "delivery.acknowledged")).scalar()
    assert acks == 1


def test_interconnected_document_with_attachment_goes_to_the_tax_office(agency):
    district, tax = agency(Q11), agency(TAX)
    accepted = district.submit(district.keys.sign(sample("lien-thong-ho-kinh-doanh.edxml")))
    assert accepted.status_code == 202, accepted.get_json()
    assert [i["document_id"] for i in tax.get("/v1/inbox").get_json()["items"]] == [
        "000.00.11.H29,2022/08/10,355/UBND-KT"
    ]


def test_resubmitting_the_same_document_returns_the_existing_id(agency, svc):
    sender = agency(HCM)
    signed = sender.keys.sign(sample("cong-van.edxml"))
    first = sender.submit(signed)
    second = sender.submit(signed)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.get_json()["duplicate"] is True
    assert len(agency(Q4).get("/v1/inbox").get_json()["items"]) == 1


def test_inbox_pages_with_a_cursor(agency):
    sender, q4 = agency(HCM), agency(Q4)
    unsigned = sample("cong-van.edxml")
    for n in range(5):
        data = unsigned.replace(b"1024/UBND-VX</edXML:DocumentId>", f"{n}/UBND-VX</edXML:DocumentId>".encode())
        assert sender.submit(sender.keys.sign(data)).status_code == 202
    seen, after = [], 0
    while True:
        page = q4.get(f"/v1/inbox?limit=2&after={after}").get_json()
        seen += [i["document_id"] for i in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == 5 and len(set(seen)) == 5


def test_only_sender_and_recipients_can_read_a_document(agency):
    sender, outsider = agency(HCM), agency(TAX)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    for path in (f"/v1/documents/{doc_id}", f"/v1/documents/{doc_id}/content", f"/v1/documents/{doc_id}/seal"):
        response = outsider.get(path)
        assert response.status_code == 404
        assert response.get_json()["code"] == "document-not-found"
    assert outsider.post(f"/v1/inbox/{doc_id}/ack").status_code == 404


def test_every_accepted_step_is_audited_as_versioned_json(agency, svc):
    sender = agency(HCM)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    with svc.db.read() as conn:
        entries = svc.audit.entries_for_document(conn, doc_id)
        bodies = [r.body for r in conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx))]
    assert [e["event"] for e in entries] == ["document.accepted", "document.routed", "document.routed"]
    assert {e["recipient"] for e in entries[1:]} == {Q4, NOIVU}
    assert all(e["v"] == 2 and len(e["salt"]) == 22 and e["signature"].startswith("valid rsa-sha256") for e in entries)
    indices = [json.loads(b)["index"] for b in bodies]
    assert indices == list(range(len(indices)))  # gap-free
    times = [json.loads(b)["time"] for b in bodies]
    assert times == sorted(times)


def test_co_recipients_see_only_their_own_delivery_and_statuses(agency, svc):
    """Issue 10, finding 8: co-recipients saw each other's states, status descriptions and endpoints."""
    from gateway.audit.checkpoint import NoteVerifier
    from gateway.audit.receipt import verify_receipt

    sender, q4, noivu = agency(HCM), agency(Q4), agency(NOIVU)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    assert q4.submit(q4.keys.sign(sample("status-03.edxml")), "/v1/status").status_code == 202
    assert q4.post(f"/v1/inbox/{doc_id}/ack").status_code == 200

    full = sender.get(f"/v1/documents/{doc_id}").get_json()
    assert [s["from"] for s in full["statuses"]] == [Q4]
    assert {r["agency"]: r.get("state") for r in full["recipients"]} == {Q4: "acknowledged", NOIVU: "pending"}

    mine = noivu.get(f"/v1/documents/{doc_id}").get_json()
    assert mine["statuses"] == []  # Q4's reply, and its description, are Q4's and the sender's business
    assert {r["agency"]: r for r in mine["recipients"]}[Q4] == {"agency": Q4}  # who else got it, nothing more
    assert {r["agency"]: r for r in mine["recipients"]}[NOIVU]["state"] == "pending"

    vkey = NoteVerifier.parse(svc.checkpoints.vkey)
    for client, hidden, shown in [(noivu, Q4, NOIVU), (q4, NOIVU, Q4), (sender, None, None)]:
        receipt = client.get(f"/v1/documents/{doc_id}/receipt").get_json()
        entries = [json.loads(base64.b64decode(e["entry"])) for e in receipt["entries"]]
        assert verify_receipt(receipt, vkey)["verdict"] == "valid"
        if hidden is None:
            assert {e.get("recipient") for e in entries} >= {Q4, NOIVU}
        else:
            assert all(hidden not in (e.get("recipient"), e.get("actor")) for e in entries)
            assert any(e.get("recipient") == shown for e in entries)
