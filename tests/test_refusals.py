"""Every refusal class: a stable problem code, an audit entry with the reason, and nothing else changed."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.documents.signing import sign_edxml
from gateway.store.tables import audit_entries
from gateway.trust import pki
from tests.support import HCM, Q4, TAX, VECTORS, sample, snapshot, summarise_refusals


def _last_audit(svc: Any) -> dict[str, Any]:
    with svc.db.read() as conn:
        body = conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx.desc()).limit(1)).scalar_one()
    return dict(json.loads(body))


def assert_refused(svc: Any, send: Callable[[], Any], status: int, code: str, event: str = "document.refused") -> None:
    before = snapshot(svc.db)
    response = send()
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code and problem["detail"] and problem["status"] == status
    summarise_refusals(svc)  # unauthenticated refusals are counted, then audited as one summary
    after = snapshot(svc.db)
    assert after.pop("audit_entries") == before.pop("audit_entries") + 1
    assert after.pop("audit_search") == before.pop("audit_search") + 1
    assert after.pop("audit_nodes") > before.pop("audit_nodes")  # the entry's Merkle leaf (and completed subtrees)
    after.pop("audit_checkpoints"), before.pop("audit_checkpoints")  # a checkpoint may be signed after any write
    assert after == before  # nothing else was stored
    entry = _last_audit(svc)
    assert (entry["event"], entry["outcome"], entry["code"]) == (event, "refused", code)
    assert entry["reason"]


def _with(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def test_malformed_xml_is_refused(agency, svc):
    sender = agency(HCM)
    sender.token()
    assert_refused(svc, lambda: sender.submit(b"<edXML:edXML"), 400, "xml-malformed")


@pytest.mark.parametrize("bomb", sorted(p.name for p in (VECTORS / "xml-bombs").glob("*.xml")))
def test_every_xml_bomb_is_refused(agency, svc, bomb):
    sender = agency(HCM)
    sender.token()
    data = (VECTORS / "xml-bombs" / bomb).read_bytes()
    # simple*.xml are the benign controls of the set: well-formed, refused by the schema instead.
    status, code = (422, "schema-invalid") if bomb.startswith("simple") else (400, "xml-forbidden")
    assert_refused(svc, lambda: sender.submit(data), status, code)


def test_schema_violation_is_refused(agency, svc):
    sender = agency(HCM)
    bad = sender.keys.sign(_with(sample("cong-van.edxml"), b"<edXML:Priority>0<", b"<edXML:Priority>9<"))
    assert_refused(svc, lambda: sender.submit(bad), 422, "schema-invalid")


def test_unsigned_document_is_refused(agency, svc):
    sender = agency(HCM)
    sender.token()
    # Issue 11: said in XSD wording before; now what is wrong, and how to sign it.
    assert_refused(svc, lambda: sender.submit(sample("cong-van.edxml")), 422, "signature-missing")
    answer = sender.submit(sample("cong-van.edxml")).get_json()
    assert "gateway sign" in answer["detail"]


def test_a_seal_sent_as_a_document_is_told_what_to_send(agency, svc):
    sender = agency(HCM)
    doc = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    seal = sender.get(f"/v1/documents/{doc}/seal").data
    answer = sender.submit(seal)
    assert answer.status_code == 422 and answer.get_json()["code"] == "schema-invalid"
    assert "send the edXML document itself" in answer.get_json()["detail"]


def test_caller_must_be_the_sender(agency, svc):
    impostor = agency(Q4)
    signed = agency(HCM).keys.sign(sample("cong-van.edxml"))
    assert_refused(svc, lambda: impostor.submit(signed), 403, "sender-mismatch")


def test_signature_by_an_unregistered_certificate_is_refused(agency, svc, dev_pki):
    sender = agency(HCM)
    other = dev_pki.agencies[Q4].signing  # valid CA chain, but registered to another agency
    signed = sign_edxml(sample("cong-van.edxml"), other.key, [other.cert])
    assert_refused(svc, lambda: sender.submit(signed), 422, "certificate-not-registered")
    detail = sender.submit(signed).get_json()["detail"]  # issue 11 newcomer: whose it is, and what to do
    assert "not registered to 000.00.00.H29" in detail and "gateway agency cert add 000.00.00.H29" in detail
    assert "CN=" in detail


def test_tampered_content_is_refused(agency, svc):
    sender = agency(HCM)
    signed = _with(sender.keys.sign(sample("cong-van.edxml")), "Quận 4".encode(), "Quận 5".encode())
    assert_refused(svc, lambda: sender.submit(signed), 422, "signature-invalid")


def test_state_secret_is_refused_at_the_door(agency, svc):
    sender = agency(HCM)
    signed = sender.keys.sign(sample("secret-mat.edxml"))
    assert_refused(svc, lambda: sender.submit(signed), 403, "state-secret")


@pytest.mark.parametrize("level", ["Tối mật", "Tuyệt mật"])
def test_higher_secrecy_levels_are_refused_too(agency, svc, level):
    sender = agency(HCM)
    data = _with(sample("secret-mat.edxml"), "Mật</edXML:Security".encode(), f"{level}</edXML:Security".encode())
    assert_refused(svc, lambda: sender.submit(sender.keys.sign(data)), 403, "state-secret")


def test_unknown_recipient_is_refused(agency, svc):
    sender = agency(HCM)
    signed = sender.keys.sign(_with(sample("cong-van.edxml"), b"000.00.31.H29", b"000.00.98.H29"))
    assert_refused(svc, lambda: sender.submit(signed), 422, "unknown-agency")


def test_disabled_recipient_is_refused(agency, svc):
    sender = agency(HCM)
    sender.token()
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, Q4, False)
    signed = sender.keys.sign(sample("cong-van.edxml"))
    assert_refused(svc, lambda: sender.submit(signed), 422, "agency-disabled")


def test_recipient_outside_the_senders_permissions_is_refused(agency, svc):
    sender = agency(HCM)
    sender.token()
    with svc.db.write() as conn:
        conn.execute(
            sa.text("UPDATE agencies SET may_send_to = :v WHERE code = :c"), {"v": '["000.00.04.*"]', "c": HCM}
        )
        # Every registry change moves the generation (AgencyRegistry._changed); a change made in SQL must too.
        conn.execute(sa.text("UPDATE registry_generation SET generation = generation + 1"))
    svc.agencies.invalidate()  # as if the second the cache may lag behind another process's change had passed
    signed = sender.keys.sign(sample("cong-van.edxml"))  # to Q4 (allowed) and Sở Nội vụ (not)
    assert_refused(svc, lambda: sender.submit(signed), 403, "not-permitted")


def test_document_id_of_another_agency_is_refused(agency, svc):
    sender = agency(HCM)
    data = _with(sample("cong-van.edxml"), b"<edXML:DocumentId>000.00.00.H29,", b"<edXML:DocumentId>000.00.04.H29,")
    assert_refused(svc, lambda: sender.submit(sender.keys.sign(data)), 422, "document-id-invalid")


def test_same_document_id_with_different_bytes_is_a_conflict(agency, svc):
    sender = agency(HCM)
    assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
    changed = sender.keys.sign(_with(sample("cong-van.edxml"), "đẩy mạnh".encode(), "tăng cường".encode()))
    assert_refused(svc, lambda: sender.submit(changed), 409, "duplicate-document-id")


def test_oversized_body_is_refused_before_reading(agency, svc):
    sender = agency(HCM)
    sender.token()
    huge = b"<a>" + b"x" * (svc.config.max_document_bytes + 1) + b"</a>"
    assert_refused(svc, lambda: sender.submit(huge), 413, "too-large")


def test_oversized_chunked_body_is_refused_and_audited(agency, svc):
    sender = agency(HCM)
    huge = b"<a>" + b"x" * (svc.config.max_document_bytes + 1) + b"</a>"

    def chunked():  # type: ignore[no-untyped-def]
        return sender.client.post(
            "/v1/documents",
            input_stream=io.BytesIO(huge),
            headers={**sender.headers(), "Transfer-Encoding": "chunked", "Content-Type": "application/xml"},
            environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked requests
        )

    assert_refused(svc, chunked, 413, "too-large")


def test_missing_or_forged_access_token_is_refused(agency, svc, app):
    client = app.test_client()
    assert_refused(svc, lambda: client.post("/v1/documents", data=b"<x/>"), 401, "invalid-token", "auth.refused")
    forged = agency(HCM).token()[:-4] + "AAAA"
    assert_refused(
        svc,
        lambda: client.post("/v1/documents", data=b"<x/>", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "invalid-token",
        "auth.refused",
    )


def test_token_of_a_disabled_agency_stops_working(agency, svc):
    sender = agency(HCM)
    sender.token()
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, HCM, False)
    assert_refused(svc, lambda: sender.get("/v1/inbox"), 401, "invalid-token", "auth.refused")


def test_status_for_an_unknown_document_is_refused(agency, svc):
    q4 = agency(Q4)
    signed = q4.keys.sign(sample("status-03.edxml"))
    assert_refused(svc, lambda: q4.submit(signed, "/v1/status"), 422, "original-not-found", "status.refused")


def test_status_from_a_non_recipient_is_refused(agency, svc):
    sender, tax = agency(HCM), agency(TAX)
    assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
    data = _with(
        sample("status-03.edxml"),
        b"<edXML:OrganId>000.00.04.H29</edXML:OrganId>",
        f"<edXML:OrganId>{TAX}</edXML:OrganId>".encode(),
    )
    assert_refused(svc, lambda: tax.submit(tax.keys.sign(data), "/v1/status"), 403, "not-permitted", "status.refused")


def test_expired_signing_certificate_is_refused(agency, svc, dev_pki):
    from datetime import UTC, datetime, timedelta

    sender = agency(HCM)
    old = pki.issue_signing_certificate(
        dev_pki.ca, "old", HCM, days=30, not_before=datetime.now(UTC) - timedelta(days=60)
    )
    with svc.db.write() as conn:
        svc.registry._insert_certificate(conn, HCM, old.cert, datetime.now(UTC))
    signed = sign_edxml(sample("cong-van.edxml"), old.key, [old.cert])
    assert_refused(svc, lambda: sender.submit(signed), 422, "certificate-expired")


def test_unknown_route_and_method_get_problem_json(app):
    client = app.test_client()
    missing = client.get("/v1/nothing")
    assert (missing.status_code, missing.mimetype, missing.get_json()["code"]) == (
        404,
        "application/problem+json",
        "not-found",
    )
    wrong = client.delete("/v1/documents")
    assert (wrong.status_code, wrong.get_json()["code"]) == (405, "method-not-allowed")


def test_a_forged_header_planted_inside_the_signature_is_refused_and_audited(agency, svc):
    """Issue 10, finding 3: a second MessageHeader in ds:Object was accepted, sealed and forwarded."""
    sender = agency(HCM)
    signed = sender.keys.sign(sample("cong-van.edxml"))
    forged = signed.replace(
        b"</ds:KeyInfo>",
        b"</ds:KeyInfo><ds:Object><edXML:MessageHeader><edXML:To><edXML:OrganId>000.00.11.H29"
        b"</edXML:OrganId></edXML:To></edXML:MessageHeader></ds:Object>",
        1,
    )
    assert forged != signed
    assert_refused(svc, lambda: sender.submit(forged), 422, "schema-invalid")
    from gateway.documents.offline import verify_offline

    report = verify_offline(forged, list(svc.keys.trust.anchors), sender_certs=[sender.keys.signing.cert])
    assert report["verdict"] == "invalid" and report["code"] in ("schema-invalid", "signature-profile")


def test_a_limit_out_of_range_is_refused_not_quietly_capped(agency):
    """Issue 10, finding 9: limit=100000 was lowered to the maximum without a word."""
    response = agency(Q4).get("/v1/inbox?limit=100000")
    assert response.status_code == 400 and response.get_json()["code"] == "invalid-request"
    assert "between 1 and" in response.get_json()["detail"]


def test_a_405_says_which_methods_are_allowed(app):
    response = app.test_client().delete("/v1/documents")
    assert response.status_code == 405 and response.mimetype == "application/problem+json"
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("encoding", ["utf-32-be", "utf-32-le", "utf-16-be", "utf-16-le"])
def test_documents_in_other_encodings_without_a_bom_are_refused(encoding):
    """Issue 10, finding 8: "UTF-8 only" let UTF-32BE without a BOM through."""
    from gateway.documents import xmlsafe
    from gateway.policy import Refusal

    data = sample("cong-van.edxml").decode().replace('encoding="UTF-8"', "").encode(encoding)
    with pytest.raises(Refusal) as refused:
        xmlsafe.parse(data)
    assert refused.value.code == "xml-malformed" and "UTF-8" in refused.value.reason


def test_bytes_that_are_not_utf_8_are_refused_by_position():
    from gateway.documents import xmlsafe
    from gateway.policy import Refusal

    data = sample("cong-van.edxml").replace("Quận 4".encode(), b"Qu\xe1n 4")
    with pytest.raises(Refusal) as refused:
        xmlsafe.parse(data)
    assert refused.value.code == "xml-malformed" and "is not UTF-8" in refused.value.reason
