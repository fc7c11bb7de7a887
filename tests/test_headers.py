"""Security headers on every answer: pages, the development provider, JSON (issue 10, finding 10)."""

from __future__ import annotations

from gateway import create_app
from tests.conftest import make_config
from tests.support import HCM, Q4


def test_pages_forbid_scripts_framing_and_foreign_forms(app):
    page = app.test_client().get("/audit/welcome")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert "script-src" not in policy  # no script may run at all
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"  # never sent to another site; forms keep their Origin


def test_the_development_providers_page_has_a_policy_too(app):
    from tests.support import authorization_request

    _verifier, params = authorization_request("audit-workbench", "http://gateway.test/audit/callback")
    page = app.test_client().get("/dev-idp/authorize", query_string=params)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_json_answers_run_nothing_and_authenticated_ones_are_never_cached(agency):
    client = agency(Q4)
    inbox = client.get("/v1/inbox")
    assert inbox.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert inbox.headers["Cache-Control"] == "no-store"
    assert agency(HCM).client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_when_the_public_url_is_https(database_url, dev_pki):
    secure = create_app(make_config(database_url, dev_pki, public_url="https://gateway.example"))
    try:
        assert secure.test_client().get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        secure.extensions["gateway"].db.dispose()


def test_plain_http_deployments_send_no_hsts(app):
    assert "Strict-Transport-Security" not in app.test_client().get("/healthz").headers
