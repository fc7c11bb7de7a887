"""Push delivery against real receivers: a local HTTP endpoint, a temporary folder, real Redis.

Time is injected: the queue's clock and the back-off's jitter are the test's, so retry timing is
checked exactly and nothing sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from adapters import Delivery, UnknownAdapter, get_adapter_class
from adapters.base import AdapterSettingsError
from adapters.filesystem import FilesystemAdapter
from adapters.redis_stream import RedisStreamAdapter
from gateway.delivery.backoff import RetryPolicy
from gateway.delivery.breaker import CircuitBreakers
from gateway.delivery.queue import DEAD, DELIVERED, QUEUED
from gateway.services import Services
from gateway.store.tables import audit_entries, routes
from tests.receiver import Receiver
from tests.support import HCM, NOIVU, Q4, Pki, sample

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=60)  # routes queued just now are due

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(svc: Services) -> Clock:
    fake = Clock()
    svc.deliveries.clock = fake
    return fake


@pytest.fixture
def receiver(svc: Services, dev_pki: Pki) -> Iterator[Receiver]:
    with Receiver(Q4, dev_pki.agencies[Q4].client_key, svc.tokens.key.public_key()) as found:
        yield found


def _push_to(svc: Services, adapter: str, **settings: object) -> None:
    with svc.db.write() as conn:
        svc.registry.set_adapter(conn, Q4, adapter, dict(settings))


def _send(agency, number: int = 1) -> str:  # type: ignore[no-untyped-def]
    sender = agency(HCM)
    data = sample("cong-van.edxml").replace(
        b"1024/UBND-VX</edXML:DocumentId>", f"{number}/UBND-VX</edXML:DocumentId>".encode()
    )
    response = sender.submit(sender.keys.sign(data))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def _route(svc: Services, doc_id: str, recipient: str = Q4) -> sa.Row:  # type: ignore[type-arg]
    with svc.db.read() as conn:
        return conn.execute(sa.select(routes).where(routes.c.document == doc_id, routes.c.recipient == recipient)).one()


def _events(svc: Services, prefix: str) -> list[dict[str, object]]:
    with svc.db.read() as conn:
        bodies = conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx)).scalars()
        return [e for e in map(json.loads, map(bytes, bodies)) if str(e["event"]).startswith(prefix)]


def _worker(svc: Services, **options: object):  # type: ignore[no-untyped-def]
    return svc.delivery_worker(uniform=lambda low, high: high, **options)  # jitter at its top: exact timing


# --- http ---------------------------------------------------------------------------------------


def test_http_push_delivers_document_and_seal_and_stores_the_signed_receipt(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    doc_id = _send(agency)
    assert _route(svc, doc_id).state == QUEUED and _route(svc, doc_id, NOIVU).state == "pending"  # inbox: pulled
    assert _worker(svc).run_once() == 1
    route = _route(svc, doc_id)
    assert route.state == DELIVERED and route.attempts == 1 and route.receipt.startswith(b"ey")
    document, seal = receiver.documents[doc_id]
    assert document == agency(Q4).get(f"/v1/documents/{doc_id}/content").data
    assert b"<" in seal and doc_id.encode() in seal
    assert [e["event"] for e in _events(svc, "delivery.")] == ["delivery.delivered"]
    assert _worker(svc).run_once() == 0  # nothing left to do


@pytest.mark.parametrize(
    ("mode", "delay", "expected"),
    [("error", 0, "answered 503"), ("ok", 1.5, "did not answer within"), ("bad-receipt", 0, "receipt")],
)
def test_http_failures_worth_retrying_are_requeued_with_back_off(svc, agency, receiver, clock, mode, delay, expected):
    _push_to(svc, "http", url=receiver.url, timeout_seconds=0.5, retry_base_seconds=10)
    receiver.mode, receiver.delay = mode, delay
    doc_id = _send(agency)
    _worker(svc).run_once()
    route = _route(svc, doc_id)
    assert route.state == QUEUED and route.attempts == 1 and expected in route.last_error
    assert route.next_attempt_at.replace(tzinfo=UTC) == clock.now + timedelta(seconds=10)
    assert _events(svc, "delivery.")[-1]["event"] == "delivery.attempt-failed"


def test_a_refused_connection_is_retried(svc, agency, clock):
    _push_to(svc, "http", url="http://127.0.0.1:9/edxml")  # nothing listens on the discard port
    doc_id = _send(agency)
    _worker(svc).run_once()
    route = _route(svc, doc_id)
    assert route.state == QUEUED and "cannot be reached" in route.last_error


def test_a_wrong_address_is_dead_lettered_at_once(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    receiver.mode = "gone"
    doc_id = _send(agency)
    _worker(svc).run_once()
    route = _route(svc, doc_id)
    assert route.state == DEAD and "wrong address" in route.last_error
    assert _events(svc, "delivery.")[-1]["event"] == "delivery.dead-lettered"


def test_back_off_doubles_until_the_agency_limit_then_dead_letters_and_manual_retry_delivers(
    svc, agency, receiver, clock
):
    _push_to(svc, "http", url=receiver.url, max_attempts=4, retry_base_seconds=10, retry_max_seconds=25)
    receiver.mode = "error"
    doc_id = _send(agency)
    worker = _worker(svc, breakers=CircuitBreakers(threshold=100))
    waits = []
    for _ in range(3):
        assert worker.run_once() == 1
        due = _route(svc, doc_id).next_attempt_at.replace(tzinfo=UTC)
        waits.append((due - clock.now).total_seconds())
        clock.advance(waits[-1] - 1)
        assert worker.run_once() == 0  # not due yet
        clock.advance(1)
    assert waits == [10, 20, 25]  # doubling, capped at retry_max_seconds
    assert worker.run_once() == 1
    assert _route(svc, doc_id).state == DEAD and _route(svc, doc_id).attempts == 4

    receiver.mode = "ok"
    route_id = _route(svc, doc_id).id
    assert svc.deliveries.retry([route_id], actor="operator") == [route_id]
    assert worker.run_once() == 1
    assert _route(svc, doc_id).state == DELIVERED
    assert receiver.posts[doc_id] == 1
    assert any(e["event"] == "delivery.retry-requested" for e in _events(svc, "delivery."))


def test_a_claim_whose_worker_died_is_taken_over_after_the_lease(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    doc_id = _send(agency)
    dead = svc.deliveries.claim("worker-that-dies", 10)
    assert len(dead) == 1 and _worker(svc).run_once() == 0  # leased
    clock.advance(svc.deliveries.lease.total_seconds() + 1)
    assert _worker(svc).run_once() == 1
    assert _route(svc, doc_id).state == DELIVERED and _route(svc, doc_id).attempts == 2
    assert svc.deliveries.record(dead[0], _ok(), RetryPolicy(), 0) is None  # the late worker records nothing


def _ok():  # type: ignore[no-untyped-def]
    from adapters import DeliveryResult

    return DeliveryResult("delivered", "late")


def test_the_circuit_breaker_postpones_an_agency_without_spending_attempts(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url, retry_base_seconds=1)
    receiver.mode = "error"
    ids = [_send(agency, n) for n in range(3)]
    breakers = CircuitBreakers(threshold=2, cooldown=300, clock=lambda: clock.now.timestamp())
    worker = _worker(svc, breakers=breakers, batch=1)
    worker.run_once(), clock.advance(5), worker.run_once(), clock.advance(5)
    assert breakers.is_open(Q4)
    assert receiver.requests == 2
    for _ in range(3):
        worker.run_once()
    assert receiver.requests == 2  # the open breaker let nothing through
    postponed = [_route(svc, i) for i in ids]
    assert all(r.state == QUEUED for r in postponed)
    assert any("circuit open" in (r.last_error or "") for r in postponed)
    assert sum(r.attempts for r in postponed) == 2  # only the two real attempts count


def test_circuit_breaker_opens_cools_down_and_lets_one_trial_through():
    now = [0.0]
    breakers = CircuitBreakers(threshold=2, cooldown=60, clock=lambda: now[0])
    breakers.failed("A"), breakers.failed("A")
    assert breakers.allows("A") == 60 and breakers.allows("B") is None
    now[0] = 61
    assert breakers.allows("A") is None  # the trial
    assert breakers.allows("A") == 60  # while the trial runs
    breakers.succeeded("A")
    assert breakers.allows("A") is None


def test_retry_policy_delays_grow_exponentially_with_equal_jitter():
    policy = RetryPolicy(max_attempts=5, base_seconds=30, max_seconds=3600)
    assert [policy.delay(n, lambda low, high: high) for n in (1, 2, 3, 8)] == [30, 60, 120, 3600]
    assert policy.delay(3, lambda low, high: low) == 60  # at least half the ceiling
    assert policy.exhausted(5) and not policy.exhausted(4)


# --- filesystem and redis-stream -------------------------------------------------------------------


def _delivery(doc_id: str = "2c6b1c1e-0000-4000-8000-000000000001") -> Delivery:
    return Delivery(doc_id, Q4, b"<edXMLEnvelope/>", b"<Seal/>", {"document_id": "x"})


def test_filesystem_drop_is_atomic_idempotent_and_the_done_folder_is_the_receipt(tmp_path: Path):
    adapter = FilesystemAdapter({"folder": str(tmp_path / "in")})
    delivery = _delivery()
    assert adapter.deliver(delivery).outcome == "awaiting-receipt"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        f"{delivery.document_uuid}.edxml",
        f"{delivery.document_uuid}.seal.xml",
    ]
    (tmp_path / "in" / f"{delivery.document_uuid}.edxml").write_bytes(b"changed by the agency")
    assert adapter.deliver(delivery).outcome == "awaiting-receipt"  # redelivery writes nothing
    assert (tmp_path / "in" / f"{delivery.document_uuid}.edxml").read_bytes() == b"changed by the agency"
    assert adapter.check_receipt(delivery).outcome == "awaiting-receipt"
    (tmp_path / "in" / "done").mkdir()
    for name in (f"{delivery.document_uuid}.edxml", f"{delivery.document_uuid}.seal.xml"):
        (tmp_path / "in" / name).rename(tmp_path / "in" / "done" / name)
    result = adapter.check_receipt(delivery)
    assert result.outcome == "delivered" and b"done" in (result.receipt or b"")
    assert adapter.deliver(delivery).outcome == "delivered"  # already done: no second copy
    assert not (tmp_path / "in" / f"{delivery.document_uuid}.edxml").exists()


def test_filesystem_delivery_through_the_worker(svc, agency, clock, tmp_path):
    _push_to(svc, "filesystem", folder=str(tmp_path / "q4"))
    doc_id = _send(agency)
    _worker(svc).run_once()
    assert _route(svc, doc_id).state == "awaiting-receipt"
    assert (tmp_path / "q4" / f"{doc_id}.edxml").read_bytes() == agency(Q4).get(f"/v1/documents/{doc_id}/content").data
    (tmp_path / "q4" / "done").mkdir()
    (tmp_path / "q4" / f"{doc_id}.edxml").rename(tmp_path / "q4" / "done" / f"{doc_id}.edxml")
    clock.advance(svc.deliveries.receipt_poll.total_seconds())
    _worker(svc).run_once()
    assert _route(svc, doc_id).state == DELIVERED
    assert [e["event"] for e in _events(svc, "delivery.")] == ["delivery.handed-over", "delivery.delivered"]


def test_an_unwritable_folder_is_retried(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    result = FilesystemAdapter({"folder": str(tmp_path / "file" / "in")}).deliver(_delivery())
    assert result.outcome == "retryable"


@pytest.fixture
def stream() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    name = f"test:{datetime.now().timestamp()}"
    yield client, name
    client.delete(name, *client.keys(f"{{{name}}}:*"))


def test_redis_stream_adds_once_and_the_consumer_ack_is_the_receipt(stream):
    client, name = stream
    adapter = RedisStreamAdapter({"url": REDIS_URL, "stream": name, "group": "q4"})
    first = adapter.deliver(_delivery())
    again = adapter.deliver(_delivery())
    assert first.outcome == "awaiting-receipt" and again.reference == first.reference
    assert client.xlen(name) == 1
    delivered = _delivery()
    delivered = Delivery(**{**delivered.__dict__, "reference": first.reference})
    assert adapter.check_receipt(delivered).outcome == "awaiting-receipt"  # no group yet
    client.xgroup_create(name, "q4", id="0")
    entries = client.xreadgroup("q4", "consumer-1", {name: ">"}, count=10)
    assert entries[0][1][0][1][b"document_id"] == delivered.document_uuid.encode()
    assert adapter.check_receipt(delivered).outcome == "awaiting-receipt"  # read, not acknowledged
    client.xack(name, "q4", first.reference)
    assert adapter.check_receipt(delivered).outcome == "delivered"


def test_a_stream_entry_lost_before_it_was_read_is_added_again(stream):
    client, name = stream
    adapter = RedisStreamAdapter({"url": REDIS_URL, "stream": name, "group": "q4"})
    first = adapter.deliver(_delivery())
    client.delete(name)  # what a Redis restart without persistence does
    lost = Delivery(**{**_delivery().__dict__, "reference": first.reference})
    assert adapter.check_receipt(lost).outcome == "retryable"
    assert adapter.deliver(_delivery()).reference != first.reference and client.xlen(name) == 1


def test_redis_unreachable_is_retryable():
    adapter = RedisStreamAdapter({"url": "redis://127.0.0.1:9/0", "stream": "s", "group": "g", "timeout_seconds": 0.5})
    assert adapter.deliver(_delivery()).outcome == "retryable"
    assert adapter.healthy()[0] is False


# --- settings and concurrency -------------------------------------------------------------------


def test_adapter_names_and_settings_are_validated_with_helpful_messages(svc):
    with pytest.raises(UnknownAdapter, match="Did you mean 'http'"):
        get_adapter_class("htp")
    with pytest.raises(AdapterSettingsError, match="needs the setting url"):
        get_adapter_class("http").validate_settings({})
    with pytest.raises(AdapterSettingsError, match="http\\(s\\) URL"):
        get_adapter_class("http").validate_settings({"url": "ftp://x"})
    with pytest.raises(AdapterSettingsError, match="max_attempts must be a whole number"):
        get_adapter_class("http").validate_settings({"url": "https://x", "max_attempts": "many"})
    with pytest.raises(AdapterSettingsError, match="absolute path"):
        get_adapter_class("filesystem").validate_settings({"folder": "relative"})
    from gateway.policy import Refusal

    with pytest.raises(Refusal) as refused, svc.db.write() as conn:
        svc.registry.set_adapter(conn, Q4, "http", {"uri": "https://x"})
    assert refused.value.code == "adapter-invalid" and "allowed:" in refused.value.reason


def test_concurrent_workers_never_claim_the_same_route(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    ids = [_send(agency, n) for n in range(24)]
    claimed: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while batch := svc.deliveries.claim(name, 3):
            with lock:
                claimed.extend(c.route_id for c in batch)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == len(ids)


def test_an_agency_over_its_submission_rate_gets_429_with_retry_after_and_it_is_audited(database_url, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies
    from tests.support import GatewayClient

    app = create_app(make_config(database_url, dev_pki, agency_submissions_per_minute=2))
    try:
        svc = app.extensions["gateway"]
        register_agencies(svc, dev_pki)
        sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
        sender.token()
        signed = sender.keys.sign(sample("cong-van.edxml"))
        assert [sender.submit(signed).status_code for _ in range(3)] == [202, 200, 429]
        refused = sender.submit(signed)
        assert refused.get_json()["code"] == "rate-limited" and int(refused.headers["Retry-After"]) >= 1
        assert _events(svc, "document.refused")[-1]["reason"].startswith("at most 2 submissions")
    finally:
        app.extensions["gateway"].db.dispose()


def test_operators_list_dead_letters_and_retry_over_the_api_and_others_are_refused(database_url, dev_pki, receiver):
    from gateway import create_app
    from tests.conftest import make_config, register_agencies
    from tests.support import GatewayClient

    app = create_app(make_config(database_url, dev_pki, operators=(NOIVU,)))
    try:
        svc = app.extensions["gateway"]
        register_agencies(svc, dev_pki)
        _push_to(svc, "http", url=receiver.url)
        receiver.mode = "gone"
        sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
        sender.token()
        doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
        svc.delivery_worker().run_once()
        operator = GatewayClient(app.test_client(), dev_pki.agencies[NOIVU])
        operator.token()
        dead = operator.get("/v1/deliveries/dead-letters").get_json()["items"]
        assert [(d["document"], d["state"]) for d in dead] == [(doc_id, "dead")] and "wrong address" in dead[0][
            "last_error"
        ]
        assert operator.get("/v1/deliveries?state=queued").get_json()["items"] == []
        assert operator.get("/v1/deliveries?state=lost").status_code == 400
        receiver.mode = "ok"
        assert operator.post(f"/v1/deliveries/{dead[0]['id']}/retry").status_code == 200
        again = operator.post(f"/v1/deliveries/{dead[0]['id']}/retry")
        assert again.status_code == 409 and again.get_json()["code"] == "not-dead-lettered"
        svc.delivery_worker().run_once()
        assert _route(svc, doc_id).state == DELIVERED
        refused = sender.get("/v1/deliveries")
        assert refused.status_code == 403 and refused.get_json()["code"] == "not-an-operator"
        assert _events(svc, "operator.refused")
    finally:
        app.extensions["gateway"].db.dispose()


def test_filesystem_redelivery_removes_what_a_killed_writer_left(tmp_path: Path):
    adapter = FilesystemAdapter({"folder": str(tmp_path)})
    delivery = _delivery()
    (tmp_path / f".{delivery.document_uuid}.edxml.4242.tmp").write_bytes(b"<half")
    assert adapter.deliver(delivery).outcome == "awaiting-receipt"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{delivery.document_uuid}.edxml",
        f"{delivery.document_uuid}.seal.xml",
    ]


def test_a_link_planted_in_the_drop_folder_is_never_written_through(tmp_path: Path):
    """Issue 10, finding 2: the agency, who may write its drop folder, planted a link at the next
    temporary name (and at the final name) to make the worker overwrite a file it can write."""
    import os

    victim = tmp_path / "gateway.db"
    victim.write_bytes(b"the database")
    drop = tmp_path / "drop"
    drop.mkdir()
    delivery = _delivery()
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # every name the old, predictable scheme used
        (drop / f".{delivery.document_uuid}.edxml.{pid}.tmp").symlink_to(victim)
    (drop / f"{delivery.document_uuid}.seal.xml").symlink_to(victim)
    adapter = FilesystemAdapter({"folder": str(drop)})
    assert adapter.deliver(delivery).outcome == "awaiting-receipt"
    assert victim.read_bytes() == b"the database"
    for name in (f"{delivery.document_uuid}.edxml", f"{delivery.document_uuid}.seal.xml"):
        written = drop / name
        assert not written.is_symlink() and written.is_file()
        assert oct(written.stat().st_mode & 0o777) == "0o640"  # dossiers carry personal data


def test_a_drop_folder_that_is_a_link_is_refused(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = FilesystemAdapter({"folder": str(tmp_path / "link")}).deliver(_delivery())
    assert result.outcome == "permanent" and "link" in result.detail
    assert not list((tmp_path / "real").iterdir())


def test_redis_wakeups_carry_a_token_per_submission_and_survive_redis_being_away():
    from gateway.delivery.wakeup import WAKE_KEY, RedisWakeup

    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    client.delete(WAKE_KEY)
    wakeup = RedisWakeup("redis://127.0.0.1:6379/12")
    wakeup.notify(), wakeup.notify()
    assert client.llen(WAKE_KEY) == 2
    wakeup.wait(1)  # takes one token and returns at once
    assert client.llen(WAKE_KEY) == 1
    client.delete(WAKE_KEY)
    away = RedisWakeup("redis://127.0.0.1:9/0")
    away.notify()  # logged, not raised: the database still has the route
    away.wait(0.01)  # falls back to a short poll


def test_submitting_wakes_an_idle_worker_only_when_a_push_route_was_queued(svc, agency, receiver, clock):
    woken = threading.Event()
    original = svc.deliveries.wakeup.notify

    def notify() -> None:
        woken.set()
        original()

    svc.deliveries.wakeup.notify = notify  # type: ignore[method-assign]
    _send(agency, 1)  # both recipients pull: no worker has anything to do
    assert not woken.is_set()
    _push_to(svc, "http", url=receiver.url)
    _send(agency, 2)
    assert woken.is_set()


def test_deliveries_health_reports_each_push_agency(svc, receiver, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gateway.cli import main

    _push_to(svc, "http", url=receiver.url)
    with svc.db.write() as conn:
        svc.registry.set_adapter(conn, NOIVU, "filesystem", {"folder": str(tmp_path / "absent")})
    monkeypatch.setenv("GATEWAY_DATABASE_URL", svc.config.database_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(svc.config.keys_dir))
    monkeypatch.setenv("GATEWAY_AUDIT_STATE_DIR", str(svc.config.published_checkpoints_dir))
    monkeypatch.setenv("GATEWAY_DEMO", "true")
    result = CliRunner().invoke(main, ["deliveries", "health", "--json"])
    rows = {r["agency"]: r for r in json.loads(result.output)}
    assert rows[Q4]["healthy"] is True and rows[NOIVU]["healthy"] is False and result.exit_code == 1


def test_metrics_show_routes_by_state_the_oldest_due_delivery_and_the_audit_log_size(app, svc, agency, clock):
    _push_to(svc, "http", url="http://127.0.0.1:9/edxml")
    _send(agency)
    clock.advance(30)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'gateway_routes{state="queued"} 1.0' in text and 'gateway_routes{state="pending"} 1.0' in text
    oldest = next(line for line in text.splitlines() if line.startswith("gateway_delivery_oldest_due_seconds "))
    assert float(oldest.split()[1]) >= 30
    assert "gateway_audit_entries " in text


def test_a_recipient_switched_to_its_inbox_finds_queued_documents_there(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    doc_id = _send(agency)
    _push_to(svc, "inbox")
    _worker(svc).run_once()
    assert _route(svc, doc_id).state == "pending" and receiver.requests == 0
    assert doc_id in [i["id"] for i in agency(Q4).get("/v1/inbox").get_json()["items"]]


def test_routes_to_a_disabled_recipient_wait_without_spending_attempts(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url)
    doc_id = _send(agency)
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, Q4, False)
    _worker(svc).run_once()
    route = _route(svc, doc_id)
    assert route.state == QUEUED and route.attempts == 0 and "disabled" in route.last_error
    assert receiver.requests == 0
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, Q4, True)
    clock.advance(301)
    _worker(svc).run_once()
    assert _route(svc, doc_id).state == DELIVERED


def test_a_document_whose_workers_keep_dying_is_dead_lettered_not_retried_forever(svc, agency, receiver, clock):
    _push_to(svc, "http", url=receiver.url, max_attempts=2)
    doc_id = _send(agency)
    for _ in range(2):  # two attempts whose workers die before recording anything
        assert len(svc.deliveries.claim("doomed", 10)) == 1
        clock.advance(svc.deliveries.lease.total_seconds() + 1)
    assert _worker(svc).run_once() == 1
    route = _route(svc, doc_id)
    assert route.state == DEAD and "never finished" in route.last_error and receiver.requests == 0


# --- issue 10, finding 5: one wall-clock deadline per attempt, below the lease; https outside demo ------


class _DrippingReceiver:
    """Answers the status line at once, then one header byte every ``every`` seconds, forever."""

    def __init__(self, every: float = 0.3) -> None:
        import socket

        self.every = every
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/edxml"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn) -> None:  # type: ignore[no-untyped-def]
        import contextlib

        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.stop.wait(self.every):
                conn.sendall(b"a")

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_attempt_deadline(svc, agency, clock):
    import time

    dripping = _DrippingReceiver()
    try:
        _push_to(svc, "http", url=dripping.url, timeout_seconds=1.5)  # each read alone would never time out
        doc_id = _send(agency)
        started = time.monotonic()
        _worker(svc).run_once()
        elapsed = time.monotonic() - started
    finally:
        dripping.close()
    route = _route(svc, doc_id)
    assert route.state == QUEUED and "did not answer within 1.5 s" in route.last_error
    assert elapsed < 4


def test_an_attempt_never_outlasts_a_third_of_the_lease_whatever_the_agency_set(svc):
    from gateway.services import adapter_deployment

    object.__setattr__(svc.config, "delivery_lease_seconds", 6)
    adapter = get_adapter_class("http")(
        {"url": "https://receiver.example/edxml", "timeout_seconds": 300}, None, adapter_deployment(svc.config)
    )
    assert adapter.deadline == 2  # type: ignore[attr-defined]


def test_plain_http_receivers_are_refused_outside_demo_mode_unless_allowed_per_agency(svc):
    from adapters import Deployment
    from gateway.policy import Refusal
    from gateway.routing.registry import AgencyRegistry

    production = Deployment(demo=False)
    http = get_adapter_class("http")
    with pytest.raises(AdapterSettingsError, match=r"https outside demo mode.*allow_http=true"):
        http.validate_settings({"url": "http://receiver.example/edxml"}, production)
    with pytest.raises(AdapterSettingsError, match="health_url must be https"):
        http.validate_settings({"url": "https://r.example/", "health_url": "http://r.example/h"}, production)
    with pytest.raises(AdapterSettingsError, match="allow_http must be true or false"):
        http.validate_settings({"url": "https://r.example/", "allow_http": "yes"}, production)
    http.validate_settings({"url": "https://receiver.example/edxml"}, production)
    http.validate_settings({"url": "http://receiver.example/edxml", "allow_http": True}, production)
    registry = AgencyRegistry(svc.audit, production)
    with pytest.raises(Refusal) as refused, svc.db.write() as conn:
        registry.set_adapter(conn, Q4, "http", {"url": "http://receiver.example/edxml"})
    assert refused.value.code == "adapter-invalid"
