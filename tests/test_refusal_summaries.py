"""Unauthenticated refusals: counted and summarised, never one permanent entry each; claims are not actors."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway import create_app
from gateway.audit import AuditLog
from gateway.audit.refusals import UnauthenticatedRefusals
from gateway.identity.state import ProcessRateLimiter
from gateway.policy import Refusal
from gateway.store.tables import audit_entries
from tests.conftest import make_config, register_agencies
from tests.support import HCM, NOIVU, Q4, GatewayClient, summarise_refusals

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def limited_app(database_url, dev_pki):  # type: ignore[no-untyped-def]
    app = create_app(make_config(database_url, dev_pki, auditors=(NOIVU,), token_requests_per_minute=50))
    register_agencies(app.extensions["gateway"], dev_pki)
    # One fixed minute: a window boundary in the middle of a test would reset the counts.
    app.extensions["gateway"].submission_limiter = ProcessRateLimiter(clock=lambda: 1_800_000_000.0)
    yield app
    app.extensions["gateway"].db.dispose()


def _entries(svc) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    with svc.db.read() as conn:
        bodies = conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx)).scalars()
        return [json.loads(b) for b in bodies]


def _garbage_token_request(client, claimed: str, address: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION, "client_assertion": "x.y.z"}
    return client.post("/oauth/token", data={**form, "client_id": claimed}, environ_base={"REMOTE_ADDR": address})


def test_a_flood_of_10000_unauthenticated_requests_adds_a_bounded_number_of_entries(limited_app):
    """Issue 13: ~200 permanent entries a second from one client before; now a few summaries a minute."""
    svc, client = limited_app.extensions["gateway"], limited_app.test_client()
    before = len(_entries(svc))
    statuses: dict[int, int] = {}
    for i in range(10_000):
        kind = i % 4
        if kind == 0:
            response = client.get("/v1/inbox", environ_base={"REMOTE_ADDR": "198.51.100.7"})
        elif kind == 1:
            response = client.get(
                f"/v1/inbox?after={i}",
                headers={"Authorization": f"Bearer junk{i}"},
                environ_base={"REMOTE_ADDR": "198.51.100.7"},
            )
        elif kind == 2:  # an attacker trying to make every agency appear in the log
            response = _garbage_token_request(client, f"000.00.{i % 97:02d}.H29", "198.51.100.7")
        else:
            response = client.get(
                "/v1/me", headers={"Authorization": "Bearer a.b.c"}, environ_base={"REMOTE_ADDR": "198.51.100.8"}
            )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert set(statuses) <= {400, 401, 429}, statuses
    assert statuses.get(429), "the token endpoint's per-address limit (50 a minute here) was never reached"
    assert len(_entries(svc)) == before  # nothing written on the request path
    written = summarise_refusals(svc)
    summaries = _entries(svc)[before:]
    assert len(summaries) == written <= 110  # one per (event, code, source, claim), capped: never one per request
    assert sum(e["count"] for e in summaries) == 10_000  # every refusal is accounted for
    assert all(
        e["outcome"] == "refused" and "actor" not in e and e["source"].startswith("198.51.100.") for e in summaries
    )
    assert summarise_refusals(svc) == 0  # counted once


def test_a_claimed_client_id_is_kept_as_claimed_actor_and_does_not_match_an_agency_search(limited_app, dev_pki):
    svc, client = limited_app.extensions["gateway"], limited_app.test_client()
    assert _garbage_token_request(client, HCM).status_code in (400, 401)
    summarise_refusals(svc)
    entry = _entries(svc)[-1]
    assert (entry["event"], entry["claimed_actor"], entry["count"]) == ("auth.token.refused", HCM, 1)
    assert "actor" not in entry
    auditor = GatewayClient(limited_app.test_client(), dev_pki.agencies[NOIVU])
    auditor.token()
    plain = auditor.get(f"/v1/audit/entries?agency={HCM}&event=auth.token.refused").get_json()["items"]
    assert plain == []  # typing an agency's code does not put the agency in auditors' results
    asked = auditor.get(f"/v1/audit/entries?agency={HCM}&event=auth.token.refused&claimed=1").get_json()["items"]
    assert [i["entry"]["claimed_actor"] for i in asked] == [HCM]


def test_distinct_kinds_beyond_the_cap_fold_into_one_summary_per_event_and_code():
    tally = UnauthenticatedRefusals(max_kinds=3)
    for i in range(1000):
        tally.count("auth.refused", Refusal("invalid-token", "no"), f"203.0.113.{i % 250}", claimed_actor=str(i))
    assert tally.pending() == 1000

    written: list[object] = []

    class FakeConn:
        pass

    class Db:
        def write(self):  # type: ignore[no-untyped-def]
            return contextlib.nullcontext(FakeConn())

    class Log(AuditLog):
        def append_many(self, conn, events, *, now=None):  # type: ignore[no-untyped-def,override]
            written.extend(events)
            return []

    assert tally.flush(Db(), Log()) == 4  # type: ignore[arg-type]
    assert sum(e.count for e in written) == 1000  # type: ignore[attr-defined]
    assert [e.source for e in written][-1] == "other"  # type: ignore[attr-defined]
    assert written[-1].claimed_actor is None  # type: ignore[attr-defined]


def test_counted_refusals_survive_a_database_outage_and_are_written_next_time():
    tally = UnauthenticatedRefusals()
    tally.count("request.refused", Refusal("header-timeout", "slow"), "192.0.2.1")

    class Down:
        def write(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("database away")

    with pytest.raises(RuntimeError):
        tally.flush(Down(), AuditLog())  # type: ignore[arg-type]
    assert tally.pending() == 1


def test_summaries_are_written_by_the_background_tick_once_their_interval_passed(limited_app):
    svc = limited_app.extensions["gateway"]
    moment = [datetime(2026, 12, 3, 9, 0, tzinfo=UTC)]
    svc.refusals = UnauthenticatedRefusals(interval_seconds=60, clock=lambda: moment[0])
    limited_app.test_client().get("/v1/inbox")
    before = len(_entries(svc))
    svc.background_tick()
    assert len(_entries(svc)) == before  # not yet due
    moment[0] += timedelta(seconds=61)
    svc.background_tick()
    latest = _entries(svc)[-1]
    assert (latest["event"], latest["code"], latest["count"], latest["since"]) == (
        "auth.refused",
        "invalid-token",
        1,
        "2026-12-03T09:00:00Z",
    )


def test_the_token_endpoint_is_limited_per_source_address(limited_app, dev_pki):
    svc, client = limited_app.extensions["gateway"], limited_app.test_client()
    answers = [_garbage_token_request(client, "x", "192.0.2.10").status_code for _ in range(51)]
    assert answers[-1] == 429 and 429 not in answers[:50]
    limited = _garbage_token_request(client, "x", "192.0.2.10")
    assert limited.mimetype == "application/problem+json" and int(limited.headers["Retry-After"]) >= 1
    # Another address is not held back, and a real agency from it still gets its token.
    other = GatewayClient(client, dev_pki.agencies[Q4])
    assert other.token()
    summarise_refusals(svc)
    limited_rows = [e for e in _entries(svc) if e.get("code") == "rate-limited"]
    assert [(e["event"], e["count"]) for e in limited_rows] == [("auth.token.refused", 2)]


def test_a_refusal_after_authentication_stays_one_entry_with_the_verified_actor(limited_app, dev_pki):
    svc = limited_app.extensions["gateway"]
    q4 = GatewayClient(limited_app.test_client(), dev_pki.agencies[Q4])
    q4.token()
    outsider = q4.get("/v1/audit/entries")  # a valid agency token without the auditor role
    assert outsider.status_code == 403
    entry = _entries(svc)[-1]  # written at once, no summary needed
    assert (entry["event"], entry["actor"], entry["code"]) == ("auditor.refused", Q4, "not-an-auditor")
    assert "count" not in entry


def test_the_metrics_count_unauthenticated_refusals_by_event_and_code(limited_app):
    client = limited_app.test_client()
    for _ in range(3):
        client.get("/v1/inbox")
    text = limited_app.extensions["gateway.metrics"].exposition().decode()
    assert 'gateway_unauthenticated_refusals_total{code="invalid-token",event="auth.refused"} 3.0' in text


def test_upgrading_moves_claimed_client_ids_of_old_refusals_out_of_the_actor_column(tmp_path):
    """Before issue 13 a refused token request's client_id was stored as actor: the search index is corrected."""
    from gateway.store import upgrade
    from gateway.store.db import Database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0012")
    db = Database(url)
    with db.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_search (idx, time_us, event, outcome, actor) VALUES "
                "(0, 0, 'auth.token.refused', 'refused', :hcm), (1, 0, 'auth.token.issued', 'ok', :hcm)"
            ),
            {"hcm": HCM},
        )
    upgrade(url)
    with db.read() as conn:
        rows = conn.execute(sa.text("SELECT idx, actor, claimed_actor FROM audit_search ORDER BY idx")).all()
    assert [tuple(r) for r in rows] == [(0, None, HCM), (1, HCM, None)]
    db.dispose()
