"""Workbench sessions can be ended (issue 10, finding 4): server-side, short-lived, re-checked, POST + CSRF.

The review found a signed client-side cookie valid for 31 days, accepted after logout and after the
auditor role was removed, with logout and language switches as cross-site-triggerable GETs.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from gateway.identity.workbench_sessions import WORKBENCH_COOKIE, WorkbenchSessions
from gateway.store.tables import audit_entries, workbench_sessions
from tests.support import DEMO_AUDITOR_ID, sign_in_workbench


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:  # type: ignore[no-untyped-def]
    svc = app.extensions["gateway"]
    fake = Clock()
    object.__setattr__(
        svc, "sessions", WorkbenchSessions(svc.db, absolute_seconds=8 * 3600, idle_seconds=900, clock=fake)
    )
    return fake


def _signed_in(app, client) -> bool:  # type: ignore[no-untyped-def]
    return bool(client.get("/audit/").status_code == 200)


def _events(app, name: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].db.read() as conn:
        bodies = [json.loads(r) for r in conn.execute(sa.select(audit_entries.c.body)).scalars()]
    return [b for b in bodies if b["event"] == name]


def _copy_cookie(source, target) -> None:  # type: ignore[no-untyped-def]
    target.set_cookie(WORKBENCH_COOKIE, source.get_cookie(WORKBENCH_COOKIE, path="/audit").value, path="/audit")


def test_logout_ends_the_session_everywhere_the_cookie_was_copied(app):
    browser, stolen = app.test_client(), app.test_client()
    csrf = sign_in_workbench(browser, app.extensions["gateway"])
    _copy_cookie(browser, stolen)
    assert _signed_in(app, stolen)
    response = browser.post("/audit/logout", data={"csrf": csrf})
    assert response.status_code == 302 and response.headers["Location"].endswith("/audit/welcome")
    assert not _signed_in(app, browser) and not _signed_in(app, stolen)
    assert _events(app, "auditor.logout")


def test_logout_and_export_are_not_reachable_by_get(app):
    client = app.test_client()
    sign_in_workbench(client, app.extensions["gateway"])
    assert client.get("/audit/logout").status_code == 405
    assert client.get("/audit/export.zip?from=2000-01-01").status_code == 405
    assert _signed_in(app, client)


@pytest.mark.parametrize(
    ("path", "data"),
    [("/audit/logout", {}), ("/audit/lang", {"lang": "en"}), ("/audit/export.zip", {"from": "2000-01-01"})],
)
def test_forms_without_the_csrf_token_or_from_another_origin_are_refused(app, path, data):
    client = app.test_client()
    csrf = sign_in_workbench(client, app.extensions["gateway"])
    for form, headers in [
        (data, {}),
        ({**data, "csrf": "forged"}, {}),
        ({**data, "csrf": csrf}, {"Origin": "https://attacker.example"}),
    ]:
        response = client.post(path, data=form, headers=headers)
        assert response.status_code == 403 and response.get_json()["code"] == "csrf-failed", (form, headers)
    assert _signed_in(app, client)
    assert client.get("/audit/").get_data(as_text=True).count("Tổng quan") >= 1  # still Vietnamese


def test_a_visitor_switches_language_before_login_with_a_token_of_their_own(app):
    client = app.test_client()
    page = client.get("/audit/welcome").get_data(as_text=True)
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = client.post("/audit/lang", data={"lang": "en", "next": "/audit/welcome", "csrf": csrf})
    assert response.status_code == 302 and response.headers["Location"].endswith("/audit/welcome")
    assert "Log in with national electronic identity" in client.get("/audit/welcome").get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    [
        "//attacker.example/x",
        "https://attacker.example/",
        "/audit/\\\\attacker",
        "/v1/x",
        "/audit/\r\nX-Injected: 1",  # review finding: a 500 from the Location header
        "/audit/\n",
        "/audit/\t",
        "/audit/" + "a" * 600,
        "/audit/../dev-idp/authorize?x",  # issue 11 review, round 2: the browser resolved it out of /audit/
        "/audit/%2e%2e/dev-idp/authorize",
    ],
)
def test_the_language_switch_only_returns_to_workbench_pages(app, target):
    client = app.test_client()
    csrf = sign_in_workbench(client, app.extensions["gateway"])
    response = client.post("/audit/lang", data={"lang": "en", "next": target, "csrf": csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/audit/"


def test_withdrawing_the_auditor_role_ends_every_session_of_that_person(app):
    svc = app.extensions["gateway"]
    first, second = app.test_client(), app.test_client()
    sign_in_workbench(first, svc)
    sign_in_workbench(second, svc)
    assert _signed_in(app, first)
    object.__setattr__(svc.config, "auditors", ("079199001234",))  # the deployment's auditor list changed
    response = first.post("/audit/export.zip", data={"from": "2000-01-01"})
    assert response.status_code == 302  # signed out before anything is checked or exported
    assert not _signed_in(app, first)
    object.__setattr__(svc.config, "auditors", (DEMO_AUDITOR_ID,))  # even given back, the old sessions stay ended
    assert not _signed_in(app, second)
    refused = _events(app, "auditor.refused")
    assert refused and "withdrawn" in refused[0]["reason"]


def test_a_session_ends_after_idle_time_and_at_its_absolute_lifetime(app, clock):
    svc = app.extensions["gateway"]
    idle, busy = app.test_client(), app.test_client()
    sign_in_workbench(idle, svc)
    sign_in_workbench(busy, svc)
    for _ in range(32):  # almost 8 hours of steady work, a page every 15 minutes
        clock.now += 899
        assert _signed_in(app, busy)
    assert not _signed_in(app, idle)  # nothing for far longer than 15 minutes
    clock.now += 899
    assert not _signed_in(app, busy)  # past 8 hours in all, however busy


def test_a_session_ends_when_the_national_id_token_it_came_from_expires(app, clock):
    svc = app.extensions["gateway"]
    token, _started = svc.sessions.start("citizen:x", "x", token_expires_at=int(clock.now) + 600)
    assert svc.sessions.current(token) is not None
    clock.now += 601
    assert svc.sessions.current(token) is None


def test_the_database_holds_only_a_hash_of_the_cookie(app):
    svc = app.extensions["gateway"]
    client = app.test_client()
    sign_in_workbench(client, svc)
    cookie = client.get_cookie(WORKBENCH_COOKIE, path="/audit").value
    with svc.db.read() as conn:
        stored = conn.execute(sa.select(workbench_sessions.c.token_sha256)).scalars().all()
    assert stored and cookie not in stored and len(stored[0]) == 64


def test_the_old_signed_cookie_format_signs_nobody_in(app):
    """The pre-fix cookie (the auditor in Flask's signed session) is no longer a session."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["auditor"] = {"actor": "citizen:" + "ab" * 32, "display": "x"}
    assert client.get("/audit/").status_code == 302


def test_login_fetches_the_issuers_discovery_document_once_not_per_visit(database_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config
    from tests.pki_server import Reply, RouteServer

    issuer = RouteServer()
    fetched: list[int] = []

    def discovery(_body: bytes) -> Reply:
        fetched.append(1)
        metadata = {"authorization_endpoint": issuer.url("/dev-idp/authorize"), "token_endpoint": issuer.url("/t")}
        return Reply(json.dumps(metadata).encode(), content_type="application/json")

    issuer.route("/dev-idp/.well-known/openid-configuration", discovery)
    app = create_app(make_config(database_url, dev_pki, public_url=issuer.base))
    try:
        client = app.test_client()
        for _ in range(5):
            response = client.get("/audit/login")
            assert response.status_code == 302 and response.headers["Location"].startswith(issuer.url("/dev-idp/"))
        assert len(fetched) == 1
    finally:
        app.extensions["gateway"].db.dispose()
        issuer.close()


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_page_opened_from_another_site_is_not_viewed_in_the_auditors_name(app, site):
    """Issue 10, finding 8: cross-site navigation to a page made an audit entry for the signed-in auditor;
    issue 11 review: so did a link from another port of this host or a sibling subdomain (same-site)."""
    client = app.test_client()
    sign_in_workbench(client, app.extensions["gateway"])
    before = len(_events(app, "auditor.search"))
    response = client.get("/audit/search?event=document.routed", headers={"Sec-Fetch-Site": site})
    assert response.status_code == 302 and response.headers["Location"].endswith("/audit/welcome")
    assert len(_events(app, "auditor.search")) == before
    assert client.get("/audit/search", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert client.get("/audit/search", headers={"Sec-Fetch-Site": "none"}).status_code == 200  # typed, bookmarked
    assert len(_events(app, "auditor.search")) == before + 2
