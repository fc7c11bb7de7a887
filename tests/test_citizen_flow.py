"""Citizens over HTTP with the development identity provider: log in (code + PKCE), file dossiers, follow them."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from gateway.documents.offline import verify_offline
from gateway.services import DEMO_PORTAL
from gateway.store.tables import audit_entries
from tests.support import NOIVU, Q4, Q11, TAX, authorization_request, status_message, summarise_refusals

CLIENT = "citizen-app"
REDIRECT = "http://127.0.0.1:9/cb"  # registered for citizen-app in demo mode
AN, BINH = 0, 1  # test citizens of the development identity provider


def login(client: Any, citizen: int = AN, level: int = 2) -> dict[str, str]:
    verifier, params = authorization_request(CLIENT, REDIRECT, state="st-1", nonce="n-1")
    page = client.get("/dev-idp/authorize", query_string=params)
    assert page.status_code == 200 and "Nguyễn Văn An" in page.get_data(as_text=True)
    redirect = client.post("/dev-idp/authorize", data={**params, "citizen": str(citizen), "level": str(level)})
    assert redirect.status_code == 302
    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert query["state"] == ["st-1"]
    tokens = client.post(
        "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": CLIENT,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.get_json()
    body: dict[str, str] = tokens.get_json()
    return body


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


HOUSEHOLD_BUSINESS = {
    "procedure": "1.001612",
    "fields": {
        "ten_ho_kinh_doanh": "Tạp hóa An Phát",
        "dia_chi": "12 Nguyễn Trãi, Quận 11",
        "nganh_nghe": "Bán lẻ",
        "von_kinh_doanh": "100000000",
    },
    "attachments": [
        {"name": "cccd.pdf", "content_type": "application/pdf", "content": base64.b64encode(b"%PDF-1.7").decode()}
    ],
}


def test_interconnected_dossier_reaches_both_agencies_and_the_citizen_follows_its_status(app, agency, dev_pki):
    client = app.test_client()
    tokens = login(client)
    me = client.get("/v1/me", headers=bearer(tokens)).get_json()
    assert me == {
        "issuer": "http://gateway.test/dev-idp",
        "personal_id": "********1234",
        "full_name": "Nguyễn Văn An",
        "birth_date": "20030412",
        "level": 2,
    }
    catalog = {p["code"]: p for p in client.get("/v1/procedures").get_json()["items"]}
    assert catalog["1.001612"]["agencies"] == [Q11, TAX] and catalog["1.001612"]["level"] == 2

    filed = client.post("/v1/dossiers", json=HOUSEHOLD_BUSINESS, headers=bearer(tokens))
    assert filed.status_code == 202, filed.get_json()
    dossier = filed.get_json()

    district, tax = agency(Q11), agency(TAX)
    for office in (district, tax):
        items = office.get("/v1/inbox").get_json()["items"]
        assert [i["document_id"] for i in items] == [dossier["document_id"]]
        content = office.get(f"/v1/documents/{items[0]['id']}/content").data
        seal = office.get(f"/v1/documents/{items[0]['id']}/seal").data
        report = verify_offline(
            content, [dev_pki.ca.cert], seal=seal, gateway_certs=app.extensions["gateway"].keys.seal_chain
        )
        assert report["verdict"] == "valid" and report["sender"] == DEMO_PORTAL[0]
        assert b"079203001234" not in content  # the number travels base64-encoded inside ho-so.json …
        attached = content.split(b"<edXML:ContentTransferEncoded>")[1].split(b"<")[0]
        assert json.loads(base64.b64decode(attached))["applicant"]["SoDinhDanh"] == "079203001234"  # … for the agency

    for code in ("03", "06"):
        reply = district.submit(
            district.keys.sign(status_message(dossier["document_id"], DEMO_PORTAL[0], Q11, code)), "/v1/status"
        )
        assert reply.status_code == 202, reply.get_json()
    view = client.get(f"/v1/dossiers/{dossier['id']}", headers=bearer(tokens)).get_json()
    assert [(h["agency"], h["status_code"]) for h in view["history"]] == [(Q11, "03"), (Q11, "06")]
    assert {a["agency"]: a["state"] for a in view["agencies"]} == {Q11: "done", TAX: "received"}
    assert view["status"] == "processing" and view["due_date"] == dossier["due_date"]
    assert [d["id"] for d in client.get("/v1/dossiers", headers=bearer(tokens)).get_json()["items"]] == [dossier["id"]]


def test_a_citizen_never_sees_another_citizens_dossier(app):
    client = app.test_client()
    an, binh = login(client, AN), login(client, BINH)
    dossier = client.post("/v1/dossiers", json=HOUSEHOLD_BUSINESS, headers=bearer(an)).get_json()
    other = client.get(f"/v1/dossiers/{dossier['id']}", headers=bearer(binh))
    assert other.status_code == 404 and other.get_json()["code"] == "dossier-not-found"
    assert client.get("/v1/dossiers", headers=bearer(binh)).get_json()["items"] == []


def test_level_1_login_cannot_file_a_level_2_procedure(app, svc):
    client = app.test_client()
    tokens = login(client, level=1)
    refused = client.post("/v1/dossiers", json=HOUSEHOLD_BUSINESS, headers=bearer(tokens))
    assert refused.status_code == 403 and refused.get_json()["code"] == "level-insufficient"
    allowed = client.post(
        "/v1/dossiers", json={"procedure": "1.000494", "fields": {"ly_do": "Xin việc"}}, headers=bearer(tokens)
    )
    assert allowed.status_code == 202, allowed.get_json()
    with svc.db.read() as conn:
        events = [json.loads(b) for b in conn.execute(sa.select(audit_entries.c.body)).scalars()]
    assert any(e["event"] == "dossier.refused" and e["code"] == "level-insufficient" for e in events)


def file_birth_registration(client: Any, tokens: dict[str, str]) -> dict[str, Any]:
    """Birth registration (1.004227): a sequential procedure, Q4 first, then NOIVU."""
    response = client.post(
        "/v1/dossiers",
        json={"procedure": "1.004227", "fields": {"ho_ten_tre": "Nguyễn Văn Bé", "ngay_sinh_tre": "2026-11-01"}},
        headers=bearer(tokens),
    )
    assert response.status_code == 202, response.get_json()
    found: dict[str, Any] = response.get_json()
    return found


def test_sequential_procedure_reaches_the_next_agency_after_the_first_finishes(app, agency):
    client = app.test_client()
    tokens = login(client)
    dossier = file_birth_registration(client, tokens)
    q4, noivu = agency(Q4), agency(NOIVU)
    assert len(q4.get("/v1/inbox").get_json()["items"]) == 1
    assert noivu.get("/v1/inbox").get_json()["items"] == []
    assert (
        q4.submit(
            q4.keys.sign(status_message(dossier["document_id"], DEMO_PORTAL[0], Q4, "06")), "/v1/status"
        ).status_code
        == 202
    )
    assert [i["document_id"] for i in noivu.get("/v1/inbox").get_json()["items"]] == [dossier["document_id"]]
    view = client.get(f"/v1/dossiers/{dossier['id']}", headers=bearer(tokens)).get_json()
    assert {a["agency"]: a["state"] for a in view["agencies"]} == {Q4: "done", NOIVU: "received"}


def test_bad_dossier_requests_get_clear_problems(app):
    client = app.test_client()
    headers = bearer(login(client))
    cases = [
        ({"procedure": "9.999999"}, 422, "unknown-procedure"),
        ({"procedure": "1.001612", "fields": {}}, 422, "dossier-invalid"),
        ({**HOUSEHOLD_BUSINESS, "attachments": [{"name": "../x", "content": "AAAA"}]}, 422, "dossier-invalid"),
        ({**HOUSEHOLD_BUSINESS, "attachments": [{"name": "a.pdf", "content": "not base64!"}]}, 422, "dossier-invalid"),
        (["not", "an", "object"], 422, "dossier-invalid"),
    ]
    for body, status, code in cases:
        response = client.post("/v1/dossiers", json=body, headers=headers)
        assert (response.status_code, response.get_json()["code"]) == (status, code), body


def test_pkce_and_single_use_codes_at_the_development_identity_provider(app):
    client = app.test_client()
    verifier, params = authorization_request(CLIENT, REDIRECT)
    assert (
        client.get("/dev-idp/authorize", query_string={**params, "code_challenge_method": "plain"}).status_code == 400
    )
    location = client.post("/dev-idp/authorize", data={**params, "citizen": "0", "level": "2"}).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": CLIENT}
    wrong = client.post("/dev-idp/token", data={**exchange, "code_verifier": "x" * 50})
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    assert client.post("/dev-idp/token", data={**exchange, "code_verifier": verifier}).status_code == 200
    assert client.post("/dev-idp/token", data={**exchange, "code_verifier": verifier}).status_code == 400  # reused


def test_the_id_token_is_not_an_access_token_for_the_gateway(app):
    client = app.test_client()
    tokens = login(client)
    refused = client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert refused.status_code == 401 and refused.get_json()["code"] == "token-audience"


def test_token_decisions_are_audited_with_a_hashed_id_never_the_number(app, svc):
    client = app.test_client()
    tokens = login(client)
    client.get("/v1/me", headers=bearer(tokens))
    client.get("/v1/me", headers={"Authorization": "Bearer " + tokens["access_token"][:-5] + "AAAAA"})
    client.post("/v1/dossiers", json=HOUSEHOLD_BUSINESS, headers=bearer(tokens))
    summarise_refusals(svc)
    with svc.db.read() as conn:
        bodies = list(conn.execute(sa.select(audit_entries.c.body)).scalars())
    text = b"".join(bodies)
    assert b"079203001234" not in text
    events = [json.loads(b) for b in bodies]
    accepted = [e for e in events if e["event"] == "citizen.token.accepted"]
    refused = [e for e in events if e["event"] == "citizen.token.refused"]
    assert accepted and accepted[0]["actor"].startswith("citizen:") and accepted[0]["issuer"].endswith("/dev-idp")
    assert refused and refused[0]["code"] == "token-signature" and refused[0]["issuer"].endswith("/dev-idp")
    assert any(e["event"] == "dossier.submitted" and e["procedure"] == "1.001612" for e in events)


def test_too_many_dossiers_get_429_with_retry_after(database_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies

    app = create_app(make_config(database_url, dev_pki, citizen_dossiers_per_hour=2))
    register_agencies(app.extensions["gateway"], dev_pki)
    client = app.test_client()
    headers = bearer(login(client))
    body = {"procedure": "1.000494", "fields": {"ly_do": "x"}}
    assert [client.post("/v1/dossiers", json=body, headers=headers).status_code for _ in range(2)] == [202, 202]
    limited = client.post("/v1/dossiers", json=body, headers=headers)
    assert limited.status_code == 429 and limited.get_json()["code"] == "rate-limited"
    assert int(limited.headers["Retry-After"]) >= 1
    app.extensions["gateway"].db.dispose()


def test_a_second_06_from_the_same_agency_does_not_skip_the_next_one(app, svc, agency):
    """Issue 10, finding 8: any agency already routed could advance a sequential procedure again."""
    from gateway.store.tables import documents, routes

    client = app.test_client()
    tokens = login(client)
    dossier = file_birth_registration(client, tokens)
    with svc.db.write() as conn:  # a third agency waits its turn after NOIVU
        conn.execute(
            sa.update(documents)
            .where(documents.c.document_id == dossier["document_id"])
            .values(pending_recipients=[NOIVU, TAX])
        )
    q4 = agency(Q4)
    done = status_message(dossier["document_id"], DEMO_PORTAL[0], Q4, "06")
    assert q4.submit(q4.keys.sign(done), "/v1/status").status_code == 202  # NOIVU's turn
    again = done.replace(b"<edXML:Description>", b"<edXML:Description>again ", 1)
    assert again != done
    assert q4.submit(q4.keys.sign(again), "/v1/status").status_code == 202
    with svc.db.read() as conn:
        routed = conn.execute(
            sa.select(routes.c.recipient)
            .join(documents, documents.c.id == routes.c.document)
            .where(documents.c.document_id == dossier["document_id"])
            .order_by(routes.c.id)
        ).scalars()
        assert list(routed) == [Q4, NOIVU]  # TAX still waits for NOIVU's 06


def test_dossier_text_that_cannot_be_stored_or_signed_is_refused_not_a_500(app):
    """Issue 10, finding 7: control characters, lone surrogates and deep nesting crashed POST /v1/dossiers."""
    client = app.test_client()
    headers = {**bearer(login(client)), "Content-Type": "application/json"}
    attachment = HOUSEHOLD_BUSINESS["attachments"][0]
    fields = HOUSEHOLD_BUSINESS["fields"]
    bodies = [
        {**HOUSEHOLD_BUSINESS, "attachments": [{**attachment, "content_type": "application/pdf\x01"}]},
        {**HOUSEHOLD_BUSINESS, "attachments": [{**attachment, "content_type": "text/plain\nX-Evil: 1"}]},
        {**HOUSEHOLD_BUSINESS, "fields": {**fields, "dia_chi": "12 Nguyễn Trãi\x0b"}},
        {**HOUSEHOLD_BUSINESS, "attachments": [{**attachment, "name": "a\x7f.pdf"}]},
        {**HOUSEHOLD_BUSINESS, "attachments": [{**attachment, "name": "hoa-don\u202efdp.exe"}]},  # review: bidi
        {**HOUSEHOLD_BUSINESS, "fields": {**fields, "dia_chi": "12 Nguyễn Trãi\u2028Quận 1"}},
    ]
    raw = [json.dumps(b).encode() for b in bodies]
    lone = json.dumps(HOUSEHOLD_BUSINESS).replace('"ten_ho_kinh_doanh": "', '"ten_ho_kinh_doanh": "\\udc80')
    assert "\\udc80" in lone
    raw.append(lone.encode())  # a lone surrogate
    raw.append(json.dumps(HOUSEHOLD_BUSINESS).replace('"cccd.pdf"', '"\\ud800.pdf"').encode())
    raw.append(b'{"procedure": "1.001612", "fields": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001)
    raw.append(b'{"procedure": "1.001612", "fields": ' + b"[" * 100000 + b"]" * 100000 + b"}")
    for body in raw:
        response = client.post("/v1/dossiers", data=body, headers=headers)
        assert response.status_code in (400, 422), (body[:80], response.status_code)
        assert response.mimetype == "application/problem+json"
    assert client.get("/v1/dossiers", headers=headers).get_json()["items"] == []


def test_the_development_provider_sends_codes_only_to_registered_redirect_uris(app):
    """Issue 10, findings 7 and 8: any redirect_uri got the code, and a CR/LF in it crashed /authorize."""
    client = app.test_client()
    for client_id, redirect_uri in [
        (CLIENT, "https://attacker.example/cb"),
        (CLIENT, REDIRECT + "/../evil"),
        (CLIENT, REDIRECT + "?extra=1"),
        (CLIENT, "http://127.0.0.1:9/cb\r\nSet-Cookie: x=1"),
        ("unregistered-app", REDIRECT),
    ]:
        _verifier, params = authorization_request(client_id, redirect_uri)
        for response in (
            client.get("/dev-idp/authorize", query_string=params),
            client.post("/dev-idp/authorize", data={**params, "citizen": "0", "level": "2"}),
        ):
            assert response.status_code == 400 and "Location" not in response.headers, redirect_uri
            assert response.get_json()["error"] == "invalid_request"


def test_the_development_providers_code_does_not_reveal_the_citizen(app):
    verifier, params = authorization_request(CLIENT, REDIRECT)
    client = app.test_client()
    location = client.post("/dev-idp/authorize", data={**params, "citizen": "0", "level": "2"}).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert code.count(".") == 0  # not a JWT
    raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    assert b"079203001234" not in raw and b"pid" not in raw
    tampered = code[:-2] + ("A" if code[-2] != "A" else "B") + code[-1]
    exchange = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
        "code_verifier": verifier,
    }
    assert client.post("/dev-idp/token", data={**exchange, "code": tampered}).status_code == 400
    assert client.post("/dev-idp/token", data={**exchange, "code": code}).status_code == 200


def test_an_agency_token_on_a_citizens_endpoint_says_which_token_is_wanted(app, agency):
    """Issue 11: an agency token sent to /v1/me was told only that its issuer is not trusted."""
    sender = agency("000.00.00.H29")
    refused = app.test_client().get("/v1/me", headers=sender.headers())
    assert refused.status_code == 401 and "national-ID token" in refused.get_json()["detail"]
