"""Citizens' satisfaction (issue 11): once per finished dossier, 1-5 and a comment, audited without the comment."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.services import DEMO_PORTAL
from gateway.store.tables import dossier_ratings
from tests.support import Q11, TAX, audit_entries_of, status_message
from tests.test_citizen_flow import BINH, HOUSEHOLD_BUSINESS, bearer, login


def _finish(agency: Any, document_id: str, *codes: str) -> None:
    for code in codes:
        office = agency(code)
        reply = office.submit(office.keys.sign(status_message(document_id, DEMO_PORTAL[0], code, "06")), "/v1/status")
        assert reply.status_code == 202, reply.get_json()


@pytest.fixture
def filed(app: Any) -> tuple[Any, dict[str, str], dict[str, Any]]:
    client = app.test_client()
    tokens = login(client)
    answer = client.post("/v1/dossiers", json=HOUSEHOLD_BUSINESS, headers=bearer(tokens))
    assert answer.status_code == 202
    return client, tokens, answer.get_json()


def test_a_finished_dossier_is_rated_once_and_the_entry_holds_the_score_not_the_comment(filed, agency, svc):
    client, tokens, dossier = filed
    url = f"/v1/dossiers/{dossier['id']}/rating"
    early = client.post(url, json={"score": 5}, headers=bearer(tokens))
    assert early.status_code == 409 and early.get_json()["code"] == "dossier-not-finished"
    _finish(agency, dossier["document_id"], Q11)
    assert client.post(url, json={"score": 5}, headers=bearer(tokens)).status_code == 409  # TAX has not finished
    _finish(agency, dossier["document_id"], TAX)
    rated = client.post(url, json={"score": 4, "comment": "  Nhanh, cán bộ nhiệt tình  "}, headers=bearer(tokens))
    assert rated.status_code == 201, rated.get_json()
    assert rated.get_json()["score"] == 4 and rated.get_json()["comment"] == "Nhanh, cán bộ nhiệt tình"
    view = client.get(f"/v1/dossiers/{dossier['id']}", headers=bearer(tokens)).get_json()
    assert view["rating"]["score"] == 4
    again = client.post(url, json={"score": 1}, headers=bearer(tokens))
    assert again.status_code == 409 and again.get_json()["code"] == "rating-exists"
    [entry] = audit_entries_of(svc, "dossier.rated")
    assert (
        entry["rating"] == 4 and entry["reason"] == f"dossier {dossier['id']}" and entry["actor"].startswith("citizen:")
    )
    assert "Nhanh" not in json.dumps(entry, ensure_ascii=False) and len(entry["comment_hash"]) == 64
    assert "document" not in entry  # not in the document's receipts: the agencies rated do not see the score
    assert "079203001234" not in json.dumps(entry)
    refused = audit_entries_of(svc, "dossier.rating-refused")
    assert [e["code"] for e in refused] == ["dossier-not-finished", "dossier-not-finished", "rating-exists"]


@pytest.mark.parametrize(
    "body",
    [
        {"score": 0},
        {"score": 6},
        {"score": "5"},
        {"score": True},
        {"score": 4.5},
        {},
        {"score": 5, "comment": "x" * 1001},
        {"score": 5, "comment": "ok\u202egcp.exe"},
        {"score": 5, "comment": 7},
        {"score": 5, "stars": 5},
        [5],
    ],
)
def test_a_malformed_rating_is_a_clear_problem_audited_and_stores_nothing(filed, agency, svc, body):
    client, tokens, dossier = filed
    _finish(agency, dossier["document_id"], Q11, TAX)
    answer = client.post(f"/v1/dossiers/{dossier['id']}/rating", json=body, headers=bearer(tokens))
    assert answer.status_code == 422 and answer.get_json()["code"] == "rating-invalid"
    assert answer.content_type.startswith("application/problem+json")
    assert [e["code"] for e in audit_entries_of(svc, "dossier.rating-refused")] == ["rating-invalid"]
    with svc.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dossier_ratings)).scalar() == 0


def test_only_the_dossiers_citizen_at_its_level_may_rate_it(filed, agency, app):
    client, _tokens, dossier = filed
    _finish(agency, dossier["document_id"], Q11, TAX)
    url = f"/v1/dossiers/{dossier['id']}/rating"
    other = client.post(url, json={"score": 1}, headers=bearer(login(app.test_client(), citizen=BINH)))
    assert other.status_code == 404 and other.get_json()["code"] == "dossier-not-found"
    weaker = client.post(url, json={"score": 1}, headers=bearer(login(app.test_client(), level=1)))
    assert weaker.status_code == 403 and weaker.get_json()["code"] == "level-insufficient"
    assert client.post(url, data="not json", headers=bearer(login(app.test_client()))).status_code == 422


def test_two_ratings_at_once_store_one_and_refuse_the_other_clearly(filed, agency, svc):
    """The check and the insert race on PostgreSQL; the primary key decides, and the loser is told."""
    import threading

    client, tokens, dossier = filed
    _finish(agency, dossier["document_id"], Q11, TAX)
    url = f"/v1/dossiers/{dossier['id']}/rating"
    app = client.application
    barrier, answers = threading.Barrier(4), []

    def rate(score: int) -> None:
        local = app.test_client()
        barrier.wait()
        answers.append(local.post(url, json={"score": score}, headers=bearer(tokens)))

    threads = [threading.Thread(target=rate, args=(n,)) for n in (1, 2, 4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409, 409, 409], [a.get_json() for a in answers]
    assert {a.get_json()["code"] for a in answers if a.status_code == 409} == {"rating-exists"}
    with svc.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dossier_ratings)).scalar() == 1
    assert len(audit_entries_of(svc, "dossier.rated")) == 1


def test_the_agencies_rated_do_not_see_the_score_in_their_receipts(filed, agency):
    client, tokens, dossier = filed
    _finish(agency, dossier["document_id"], Q11, TAX)
    assert (
        client.post(f"/v1/dossiers/{dossier['id']}/rating", json={"score": 1}, headers=bearer(tokens)).status_code
        == 201
    )
    receipt = agency(Q11).get(f"/v1/documents/{dossier['document']}/receipt").get_json()
    bodies = [base64.b64decode(e["entry"]) for e in receipt["entries"]]
    assert bodies and not [b for b in bodies if b'"dossier.rated"' in b]


def test_rating_attempts_are_limited_and_a_made_up_dossier_id_is_not_echoed(filed, svc):
    client, tokens, _dossier = filed
    long_id = "x" * 1500 + "\u202e"
    answer = client.post(f"/v1/dossiers/{long_id}/rating", json={"score": 5}, headers=bearer(tokens))
    assert answer.status_code == 404 and "x" * 50 not in answer.get_json()["detail"]
    limit = svc.config.citizen_dossiers_per_hour
    codes = [
        client.post(
            "/v1/dossiers/00000000-0000-0000-0000-000000000000/rating", json={"score": 5}, headers=bearer(tokens)
        ).status_code
        for _ in range(limit + 1)
    ]
    assert codes[-1] == 429 and set(codes[:-2]) == {404}


@pytest.mark.parametrize(
    "raw",
    ['{"score": 1, "score": 5}', '{"score": 5, "comment": "a", "comment": "b"}', "[" * 5000 + "]" * 5000],
    ids=["score-twice", "comment-twice", "nested-5000"],
)
def test_a_body_parsers_would_read_differently_is_refused_not_guessed(filed, agency, svc, raw):
    """Issue 11 review: ``{"score":1,"score":5}`` was stored as 5 while a proxy reading the first saw 1."""
    client, tokens, dossier = filed
    _finish(agency, dossier["document_id"], Q11, TAX)
    answer = client.post(
        f"/v1/dossiers/{dossier['id']}/rating", data=raw, content_type="application/json", headers=bearer(tokens)
    )
    assert answer.status_code == 422 and answer.get_json()["code"] == "rating-invalid", answer.get_json()
    assert "not JSON we accept" in answer.get_json()["detail"]
    [refused] = audit_entries_of(svc, "dossier.rating-refused")
    assert refused["code"] == "rating-invalid"
    with svc.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dossier_ratings)).scalar() == 0


def test_every_refused_rating_names_the_dossier_it_aimed_at(filed, agency, app, svc):
    """Issue 11 review: only ``dossier-not-found`` said which dossier; the auditor could not tell the others apart."""
    client, tokens, dossier = filed
    url = f"/v1/dossiers/{dossier['id']}/rating"
    client.post(url, json={"score": 5}, headers=bearer(tokens))  # dossier-not-finished
    _finish(agency, dossier["document_id"], Q11, TAX)
    client.post(url, json={"score": 9}, headers=bearer(tokens))  # rating-invalid
    client.post(url, json={"score": 5}, headers=bearer(login(app.test_client(), level=1)))  # level-insufficient
    client.post(url, json={"score": 5}, headers=bearer(tokens))
    client.post(url, json={"score": 4}, headers=bearer(tokens))  # rating-exists
    client.post("/v1/dossiers/not-a-dossier/rating", json={"score": 5}, headers=bearer(tokens))
    refused = audit_entries_of(svc, "dossier.rating-refused")
    assert [e["code"] for e in refused] == [
        "dossier-not-finished",
        "rating-invalid",
        "level-insufficient",
        "rating-exists",
        "dossier-not-found",
    ]
    assert [e.get("dossier") for e in refused] == [dossier["id"]] * 4 + [None]  # made-up text is not recorded
    [rated] = audit_entries_of(svc, "dossier.rated")
    assert rated["dossier"] == dossier["id"] and "document" not in rated
