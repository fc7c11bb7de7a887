"""The auditor workbench's pages over the Flask client: access, masking, proofs, languages, refusals.

The login itself goes through the identity provider over HTTP and is exercised in the browser
tests (tests/test_workbench_browser.py); here an auditor's session is set the way the callback
sets it, so each page's behaviour can be pinned down on both databases.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway import create_app
from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpoint import NoteVerifier
from gateway.citizen.dossier import LOCAL
from gateway.identity.personal_id import hashed
from gateway.store.tables import audit_entries
from tests.conftest import make_config, register_agencies
from tests.support import DEMO_AUDITOR_ID, HCM, Q4, GatewayClient, sample, sign_in_workbench
from tests.test_auditors import triggers_bypassed


@pytest.fixture
def workbench(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.csrf = sign_in_workbench(client, app.extensions["gateway"])
    return client


def _auditor_actor(app) -> str:  # type: ignore[no-untyped-def]
    return "citizen:" + hashed(DEMO_AUDITOR_ID, app.extensions["gateway"].keys.pepper)


def _send(app, dev_pki) -> str:  # type: ignore[no-untyped-def]
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    sender.token()
    doc_id = str(sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"])
    app.extensions["gateway"].checkpoints.refresh(force=True)
    return doc_id


def _events(app, event: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    svc = app.extensions["gateway"]
    with svc.db.read() as conn:
        bodies = conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx)).scalars()
        return [e for e in map(json.loads, map(bytes, bodies)) if e["event"] == event]


def test_pages_send_a_visitor_without_a_session_to_the_welcome_page(app):
    client = app.test_client()
    for page in (
        "/audit/",
        "/audit/search",
        "/audit/documents/x",
        "/audit/entries/0",
        "/audit/checkpoint",
        "/audit/export",
    ):
        response = client.get(page)
        assert response.status_code == 302 and response.headers["Location"].endswith("/audit/welcome"), page
    assert "Đăng nhập bằng định danh điện tử" in client.get("/audit/welcome").get_data(as_text=True)


def test_a_callback_that_did_not_start_here_is_refused_and_logs_nobody_in(app):
    client = app.test_client()
    response = client.get("/audit/callback?code=abc&state=forged")
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert client.get("/audit/").status_code == 302


def test_without_demo_mode_login_needs_a_workbench_client_at_the_issuer(database_url, dev_pki):
    app = create_app(make_config(database_url, dev_pki, demo=False))
    try:
        response = app.test_client().get("/audit/login")
        assert response.status_code == 503 and response.get_json()["code"] == "workbench-unavailable"
        assert "workbench_client_id" in response.get_json()["detail"]
    finally:
        app.extensions["gateway"].db.dispose()


def test_search_lists_hits_with_their_index_masks_citizens_and_is_audited(app, dev_pki, workbench):
    register_agencies(app.extensions["gateway"], dev_pki)
    doc_id = _send(app, dev_pki)
    page = workbench.get(f"/audit/search?agency={Q4}&event=document.routed").get_data(as_text=True)
    assert "document.routed" in page and f"/audit/documents/{doc_id}" in page
    reads = workbench.get("/audit/search?event=auditor.search").get_data(as_text=True)
    actor = _auditor_actor(app)
    assert actor[:18] in reads and actor not in reads  # the actor hash is shortened on screen
    searches = _events(app, "auditor.search")
    assert searches and searches[0]["actor"] == actor and "workbench" in str(searches[0]["reason"])


def test_a_timeline_shows_each_event_with_its_verified_inclusion(app, dev_pki, workbench):
    register_agencies(app.extensions["gateway"], dev_pki)
    doc_id = _send(app, dev_pki)
    page = workbench.get(f"/audit/documents/{doc_id}").get_data(as_text=True)
    assert page.count("✓") == 3  # accepted, and routed to each of the two recipients
    assert "document.accepted" in page and _events(app, "auditor.timeline")


def test_a_timeline_flags_an_entry_edited_in_the_database(app, dev_pki, workbench):
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    doc_id = _send(app, dev_pki)
    with triggers_bypassed(svc.db) as conn:
        body = conn.execute(
            sa.select(audit_entries.c.body).where(audit_entries.c.event == "document.accepted")
        ).scalar_one()
        edited = bytes(body).replace(b'"accepted"', b'"refused"')
        conn.execute(sa.update(audit_entries).where(audit_entries.c.body == body).values(body=edited))
    page = workbench.get(f"/audit/documents/{doc_id}").get_data(as_text=True)
    assert page.count("✓") == 2 and "✗ không khớp" in page.lower()


def test_the_checkpoint_page_says_the_log_verified(app, dev_pki, workbench):
    register_agencies(app.extensions["gateway"], dev_pki)
    _send(app, dev_pki)
    app.extensions["gateway"].checkpoints.refresh(force=True)
    assert workbench.get("/audit/search").status_code == 200  # one more entry: the page compares two checkpoints
    page = workbench.get("/audit/checkpoint").get_data(as_text=True)
    assert 'id="log-status" class="ok"' in page and "— " in page


def test_overview_chart_table_and_csv_in_both_languages(app, dev_pki, workbench):
    register_agencies(app.extensions["gateway"], dev_pki)
    _send(app, dev_pki)
    vietnamese = workbench.get("/audit/").get_data(as_text=True)
    assert "<svg" in vietnamese and Q4 in vietnamese and "Tổng quan" in vietnamese and "Quận 4" in vietnamese
    switched = workbench.post(
        "/audit/lang", data={"lang": "en", "next": "/audit/", "csrf": workbench.csrf}, follow_redirects=True
    )
    assert "Overview" in switched.get_data(as_text=True) and "Whole city" in switched.get_data(as_text=True)
    assert "Search the log" in workbench.get("/audit/search").get_data(as_text=True)  # the choice stays
    csv = workbench.get("/audit/overview.csv")
    assert csv.mimetype == "text/csv" and Q4 in csv.get_data(as_text=True)
    old = workbench.get("/audit/statistics?period=year")  # old bookmarks land on the overview
    assert old.status_code == 302 and old.headers["Location"].endswith("/audit/?period=year")


def test_bad_dates_get_a_problem_for_scripts_and_the_workbenchs_own_page_for_browsers(workbench):
    for page in ("/audit/?from=yesterday", "/audit/search?from=23/11/2026", "/audit/search?period=decade"):
        response = workbench.get(page)
        assert response.status_code == 400 and response.get_json()["code"] == "invalid-request", page
        shown = workbench.get(page, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        html = shown.get_data(as_text=True)
        assert shown.status_code == 400 and shown.mimetype == "text/html", page
        assert 'id="problem-code">invalid-request<' in html and 'id="back"' in html and "Tổng quan" in html


def test_export_downloads_a_bundle_that_verifies_offline(app, dev_pki, workbench, tmp_path):
    register_agencies(app.extensions["gateway"], dev_pki)
    _send(app, dev_pki)
    response = workbench.post("/audit/export.zip", data={"from": "2000-01-01", "csrf": workbench.csrf})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    vkey = NoteVerifier.parse(app.extensions["gateway"].checkpoints.vkey)
    (tmp_path / "audit.zip").write_bytes(response.data)
    assert verify_bundle(tmp_path / "audit.zip", vkey).valid
    assert _events(app, "auditor.export")
    empty = workbench.post("/audit/export.zip", data={"from": "2000-01-01", "to": "2000-01-02", "csrf": workbench.csrf})
    assert empty.status_code == 404 and empty.get_json()["code"] == "export-empty"


def test_an_unreachable_identity_provider_is_a_clear_problem(database_url, dev_pki):
    app = create_app(make_config(database_url, dev_pki, public_url="http://127.0.0.1:9"))  # nothing listens there
    try:
        response = app.test_client().get("/audit/login")
        assert response.status_code == 503 and response.get_json()["code"] == "issuer-unavailable"
    finally:
        app.extensions["gateway"].db.dispose()


def test_a_plain_to_date_includes_that_whole_day_in_vietnam(app, dev_pki, workbench):
    register_agencies(app.extensions["gateway"], dev_pki)
    _send(app, dev_pki)
    today = datetime.now(LOCAL).date().isoformat()
    page = workbench.get(f"/audit/search?from={today}&to={today}&event=document.accepted").get_data(as_text=True)
    assert "document.accepted" in page
    yesterday = (datetime.now(LOCAL).date() - timedelta(days=1)).isoformat()
    page = workbench.get(f"/audit/search?to={yesterday}&event=document.accepted").get_data(as_text=True)
    assert 'id="results"' not in page


def test_a_documents_page_offers_its_evidence_package_which_verifies(app, dev_pki, workbench):
    from gateway.trust.evidence import verify_package

    doc_id = _send(app, dev_pki)
    svc = app.extensions["gateway"]
    svc.timestamper.run_once()
    page = workbench.get(f"/audit/documents/{doc_id}").get_data(as_text=True)
    assert f"/audit/documents/{doc_id}/evidence" in page and "gói chứng cứ" in page
    package = workbench.get(f"/audit/documents/{doc_id}/evidence")
    assert package.status_code == 200 and package.mimetype == "application/vnd.etsi.asic-e+zip"
    report = verify_package(
        package.data, anchors=[dev_pki.ca.cert], gateway_certs=list(svc.keys.seal_chain), vkey=svc.checkpoints.vkey
    )
    assert report["verdict"] == "valid", report
    assert _events(app, "auditor.evidence-exported")
