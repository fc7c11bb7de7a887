"""Trusted timestamps for accepted documents: one batched RFC 3161 token per pass, a failure period
while the TSA is away, the backlog timestamped when it returns, checkpoints timestamped too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.policy import Refusal
from gateway.store.tables import checkpoint_timestamps, documents, timestamp_batches
from gateway.trust.timestamper import batch_inclusion, leaf_index, signature_leaf
from gateway.trust.timestamps import verify_timestamp
from tests.support import HCM, sample
from tests.test_refusals import assert_refused


def submit(sender, number: int):
    return sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024", str(number).encode())))


def pending(svc) -> int:
    with svc.db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(documents).where(documents.c.timestamp_batch.is_(None))
            ).scalar_one()
        )


def test_one_token_covers_a_pass_and_each_document_proves_its_place(agency, svc, dev_pki):
    sender = agency(HCM)
    for number in range(6001, 6006):
        assert submit(sender, number).status_code == 202
    svc.checkpoints.refresh_quietly()  # what each server process's once-a-second thread does
    calls = svc.timestamper.requests
    assert svc.timestamper.run_once() == 5  # one TSA call for the five documents (and one for the checkpoint)
    assert svc.timestamper.requests == calls + 2
    with svc.db.read() as conn:
        batch = conn.execute(sa.select(timestamp_batches)).one()
        rows = conn.execute(sa.select(documents.c.signature_value)).all()
        token = conn.execute(sa.text("SELECT content FROM trust_evidence WHERE kind = 'timestamp'")).scalars().first()
    for row in rows:
        index = leaf_index(bytes(batch.leaves), bytes(row.signature_value))
        root, path = batch_inclusion(bytes(batch.leaves), index)
        assert bytes(batch.leaves)[index * 32 :][:32] == signature_leaf(bytes(row.signature_value))
        assert root.hex() == batch.root and path is not None
    assert verify_timestamp(bytes(token), bytes.fromhex(batch.root), [dev_pki.ca.cert]).digest.hex() == batch.root


def test_tsa_down_within_the_period_keeps_accepting_and_the_backlog_is_timestamped(agency, svc, dev_pki):
    sender = agency(HCM)
    svc.timestamper.url = "http://127.0.0.1:9/tsa"  # nothing listens there
    assert submit(sender, 6101).status_code == 202
    assert svc.timestamper.run_once() == 0
    assert svc.timestamper.health().failing_since is not None
    assert submit(sender, 6102).status_code == 202  # within the failure period
    svc.timestamper.url = dev_pki.status.tsa  # back
    assert svc.timestamper.run_once() == 2 and pending(svc) == 0
    assert svc.timestamper.health().failing_since is None
    with svc.db.read() as conn:  # the outage is in the audit log once, when it began and when it ended
        events = conn.execute(sa.text("SELECT event FROM audit_search WHERE event LIKE 'timestamp.%' ORDER BY idx"))
        assert list(events.scalars()) == ["timestamp.failing", "timestamp.recovered"]


def test_past_the_failure_period_submissions_get_503_and_nothing_is_stored(agency, svc, dev_pki):
    sender = agency(HCM)
    svc.timestamper.url = "http://127.0.0.1:9/tsa"
    assert submit(sender, 6201).status_code == 202
    svc.timestamper.run_once()
    started = svc.timestamper.clock()
    svc.timestamper.clock = lambda: started + timedelta(seconds=svc.config.timestamp_failure_seconds + 1)
    data = sender.keys.sign(sample("cong-van.edxml").replace(b"1024", b"6202"))
    assert_refused(svc, lambda: sender.submit(data), 503, "timestamp-unavailable")
    svc.timestamper.url = dev_pki.status.tsa
    svc.timestamper.clock = lambda: datetime.now(UTC)  # the TSA's time and ours agree again
    assert svc.timestamper.run_once() == 1  # the backlog, and the door opens again
    assert submit(sender, 6203).status_code == 202


def test_readiness_reports_the_timestamp_backlog_and_refusal(app, agency, svc):
    sender = agency(HCM)
    svc.timestamper.url = "http://127.0.0.1:9/tsa"
    submit(sender, 6301)
    svc.timestamper.run_once()
    ready = app.test_client().get("/readyz").get_json()
    assert ready["details"]["timestamps"]["pending"] == 1 and ready["details"]["timestamps"]["failing_since"]
    assert ready["details"]["timestamps"]["overdue"] is False
    started = svc.timestamper.clock()
    svc.timestamper.clock = lambda: started + timedelta(seconds=svc.config.timestamp_failure_seconds + 1)
    late = app.test_client().get("/readyz")  # reads and deliveries still work: the process stays ready
    assert late.status_code == 200 and late.get_json()["details"]["timestamps"]["overdue"] is True


def test_the_failure_period_is_the_databases_not_a_processs(agency, svc, dev_pki, database_url):
    """A restarted or added worker sees the same backlog and does not grant itself a fresh period."""
    from gateway import create_app
    from tests.conftest import make_config

    sender = agency(HCM)
    svc.timestamper.url = "http://127.0.0.1:9/tsa"
    assert submit(sender, 6501).status_code == 202
    started = svc.timestamper.clock()
    later = started + timedelta(seconds=svc.config.timestamp_failure_seconds + 1)
    fresh = create_app(make_config(database_url, dev_pki, tsa_url="http://127.0.0.1:9/tsa"))
    fresh_svc = fresh.extensions["gateway"]
    fresh_svc.timestamper.clock = lambda: later
    try:
        with pytest.raises(Refusal) as refused:
            fresh_svc.timestamper.refuse_if_overdue()
        assert refused.value.code == "timestamp-unavailable"
    finally:
        fresh_svc.db.dispose()


def test_audit_checkpoints_are_timestamped_and_served(app, agency, svc, dev_pki):
    import base64
    import hashlib

    client = app.test_client()
    assert client.get("/v1/audit/checkpoint/timestamp").status_code == 404
    submit(agency(HCM), 6401)
    svc.checkpoints.refresh(force=True)
    svc.timestamper.run_once()
    with svc.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(checkpoint_timestamps)).scalar_one() == 1
    served = client.get("/v1/audit/checkpoint/timestamp").get_json()
    digest = hashlib.sha256(served["note"].encode()).digest()
    stamp = verify_timestamp(base64.b64decode(served["token"]), digest, [dev_pki.ca.cert])
    assert stamp.gen_time.isoformat() == served["gen_time"]


def test_a_resent_document_is_answered_even_past_the_failure_period(agency, svc, dev_pki):
    sender = agency(HCM)
    svc.timestamper.url = "http://127.0.0.1:9/tsa"
    data = sender.keys.sign(sample("cong-van.edxml").replace(b"1024", b"6601"))
    assert sender.submit(data).status_code == 202
    started = svc.timestamper.clock()
    svc.timestamper.clock = lambda: started + timedelta(seconds=svc.config.timestamp_failure_seconds + 1)
    assert sender.submit(data).status_code == 200  # already stored: nothing new to timestamp


def test_a_tsa_whose_clock_is_wrong_is_treated_as_failing(agency, svc):
    submit(agency(HCM), 6701)
    started = svc.timestamper.clock()
    svc.timestamper.clock = lambda: started + timedelta(hours=2)  # our clock and the TSA's disagree
    assert svc.timestamper.run_once() == 0
    assert "genTime" in (svc.timestamper.health().last_error or "")
