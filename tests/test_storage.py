"""Storage on both databases: the audit sequencer, the replay cache, content-addressed blobs."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEvent, AuditLog
from gateway.identity.state import RateLimiter, RedisStateStore, SqlStateStore, StateStore
from gateway.store.db import Database
from gateway.store.helpers import insert_ignoring_duplicates
from gateway.store.tables import audit_entries, blobs

REDIS_URL = "redis://127.0.0.1:6379/15"


def test_audit_indices_have_no_gaps_when_transactions_roll_back(database_url):
    db, log = Database(database_url), AuditLog()
    with db.write() as conn:
        log.append(conn, AuditEvent("test.one", "ok"))
    with pytest.raises(RuntimeError), db.write() as conn:
        log.append(conn, AuditEvent("test.rolled-back", "ok"))
        raise RuntimeError("abort")
    with db.write() as conn:
        second = log.append(conn, AuditEvent("test.two", "ok"))
    assert second.index == 1
    db.dispose()


def test_concurrent_appenders_get_distinct_consecutive_indices_and_monotonic_time(database_url):
    db, log = Database(database_url), AuditLog()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(15):
                with db.write() as conn:
                    log.append(conn, AuditEvent("test.concurrent", "ok"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.read() as conn:
        rows = conn.execute(sa.select(audit_entries.c.idx, audit_entries.c.body).order_by(audit_entries.c.idx)).all()
    assert [r.idx for r in rows] == list(range(60))
    times = [json.loads(r.body)["time"] for r in rows]
    assert times == sorted(times)
    db.dispose()


def test_clock_going_backwards_does_not_make_audit_time_go_backwards(database_url):
    from datetime import UTC, datetime, timedelta

    db, log = Database(database_url), AuditLog()
    now = datetime.now(UTC)
    with db.write() as conn:
        first = log.append(conn, AuditEvent("test.a", "ok"), now=now)
        second = log.append(conn, AuditEvent("test.b", "ok"), now=now - timedelta(seconds=30))
    assert second.time >= first.time
    db.dispose()


def test_identical_content_is_stored_once(database_url):
    db = Database(database_url)
    with db.write() as conn:
        for _ in range(3):
            insert_ignoring_duplicates(conn, blobs, {"sha256": "ab" * 32, "size": 3, "content": b"abc"})
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(blobs)).scalar() == 1
    db.dispose()


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024 + 5])  # the plain statement and SQLite's in-place I/O
def test_stored_bytes_come_back_whole_in_pieces_and_once_per_digest(database_url, size):
    import hashlib

    from gateway.store.blob_io import PIECE_BYTES, blob_pieces, store_blob

    data = bytes(range(256)) * (size // 256) + b"\0" * (size % 256)
    sha = hashlib.sha256(data).hexdigest()
    db = Database(database_url)
    with pytest.raises(RuntimeError), db.write() as conn:  # a rolled-back write leaves nothing behind
        store_blob(conn, sha, data)
        raise RuntimeError
    with db.write() as conn:
        store_blob(conn, sha, data)
        store_blob(conn, sha, b"x" * size)  # the same digest again is never written over
    with db.write() as conn:
        store_blob(conn, sha, data)
    with db.read() as conn:
        pieces = list(blob_pieces(conn, sha))
        assert conn.execute(sa.select(sa.func.count()).select_from(blobs)).scalar() == 1
    assert b"".join(pieces) == data
    if db.is_sqlite:
        assert max(len(p) for p in pieces) <= PIECE_BYTES
    db.dispose()


def test_sql_replay_cache_refuses_a_second_use_until_expiry(database_url):
    cache = SqlStateStore(Database(database_url))
    key = uuid.uuid4().hex
    assert cache.first_use("ns", key, int(time.time()) + 60)
    assert not cache.first_use("ns", key, int(time.time()) + 60)
    assert cache.first_use("other-ns", key, int(time.time()) + 60)
    expired = uuid.uuid4().hex
    assert cache.first_use("ns", expired, int(time.time()) - 1)
    assert cache.first_use("ns", expired, int(time.time()) + 60)  # an expired record no longer blocks


def test_redis_replay_cache_against_the_real_server():
    cache = RedisStateStore(REDIS_URL)
    assert cache.ping(), "Redis is required at 127.0.0.1:6379"
    key = uuid.uuid4().hex
    assert cache.first_use("ns", key, int(time.time()) + 60)
    assert not cache.first_use("ns", key, int(time.time()) + 60)
    assert cache.first_use("other-ns", key, int(time.time()) + 60)


def _limits_hold(store: StateStore) -> None:
    key = f"test:{uuid.uuid4().hex}"
    decisions = [store.hit(key, 3, 60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert 0 < decisions[-1].retry_after <= 60
    assert store.hit(f"{key}-other", 3, 60).allowed


def _mid_minute() -> float:
    """Fixed windows reset on the minute: a clock held mid-minute keeps five hits in one window."""
    now = time.time()
    return now - now % 60 + 30


def test_sql_rate_limit_counts_across_calls(database_url):
    _limits_hold(SqlStateStore(Database(database_url), clock=_mid_minute))


def test_redis_rate_limit_counts_across_calls():
    _limits_hold(RedisStateStore(REDIS_URL, clock=_mid_minute))


def _allowed_from_four_threads(store: RateLimiter, limit: int, window: int) -> int:
    """Forty hits on one key from four threads at once: how many the limiter let through."""
    key, results = f"test:{uuid.uuid4().hex}", []

    def worker() -> None:
        results.extend(store.hit(key, limit, window).allowed for _ in range(10))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results.count(True)


def test_sql_rate_limit_is_exact_under_concurrency(database_url):
    assert _allowed_from_four_threads(SqlStateStore(Database(database_url)), 25, 3600) == 25


def test_subtree_hashes_are_right_whatever_the_batch_sizes(database_url):
    """Appends come one by one (documents) or in batches (a document's entries); both must build the same tree."""
    import random

    from gateway.audit.log import StoredTree
    from gateway.audit.merkle import LeafHashes, root_hash

    db, log, rng = Database(database_url), AuditLog(), random.Random(11)
    total = 0
    while total < 90:
        batch = rng.randint(1, 7)
        with db.write() as conn:
            log.append_many(conn, [AuditEvent("test.batch", "ok", actor=str(total + i)) for i in range(batch)])
        total += batch
    with db.read() as conn:
        bodies = [
            bytes(b) for b in conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx)).scalars()
        ]
        tree = StoredTree(conn)
        for size in range(1, total + 1):
            assert root_hash(tree, size) == root_hash(LeafHashes.of_entries(bodies[:size]), size)
    db.dispose()


def test_process_rate_limit_counts_exactly_across_threads_and_bounds_its_memory():
    from gateway.identity.state import ProcessRateLimiter

    _limits_hold(ProcessRateLimiter(clock=_mid_minute))
    assert _allowed_from_four_threads(ProcessRateLimiter(clock=_mid_minute), 25, 60) == 25
    small = ProcessRateLimiter(clock=_mid_minute, max_keys=3)
    for n in range(10):
        small.hit(f"flood-{n}", 1, 60)
    assert len(small._counts) == 3  # a flood of names cannot grow memory


def test_an_embedded_submission_writes_no_rate_limit_row(app, dev_pki):
    """Issue 12: the per-agency limit cost a write transaction on every submission."""
    import sqlalchemy as sa

    from gateway.store.tables import rate_limits
    from tests.conftest import register_agencies
    from tests.support import HCM, GatewayClient, sample

    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    sender.token()
    assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
    with svc.db.read() as conn:
        keys = list(conn.execute(sa.select(rate_limits.c.key)).scalars())
    assert not [k for k in keys if k.startswith("submissions:")]
