"""The request path's registry cache: no database round trip per document, any change seen within a second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from gateway.routing.registry import AgencyRegistry
from gateway.routing.registry_cache import RegistryCache
from gateway.trust import pki
from tests.support import HCM, Q4


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def statements(svc: Any) -> Iterator[list[str]]:
    """The SQL statements the database receives inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SELECT 1")):
            seen.append(sql)

    event.listen(svc.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", record)


def another_worker(svc: Any) -> AgencyRegistry:
    """A registry as a second gunicorn worker or host holds it: it shares only the database."""
    return AgencyRegistry(svc.audit, svc.registry._deployment)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(svc: Any, clock: Clock) -> RegistryCache:
    return RegistryCache(svc.db, svc.registry, max_age=1.0, clock=clock)


def test_repeated_look_ups_within_a_second_ask_the_database_nothing(cache, svc, clock):
    cache.agencies([HCM, Q4])
    cache.signing_certificates(HCM)
    with statements(svc) as seen:
        assert set(cache.agencies([HCM, Q4])) == {HCM, Q4}
        assert cache.signing_certificates(HCM)
        clock.now += 0.9
        cache.agency(HCM)
    assert seen == []
    with statements(svc) as seen:  # a second later: one look at the generation, nothing reloaded
        clock.now += 0.2
        cache.agencies([HCM, Q4])
        cache.signing_certificates(HCM)
    assert len(seen) == 1 and "registry_generation" in seen[0]


def test_an_agency_disabled_by_another_worker_reads_disabled_within_a_second(cache, svc, clock):
    assert cache.agency(HCM).enabled
    with svc.db.write() as conn:
        another_worker(svc).set_enabled(conn, HCM, False)
    clock.now += 1.0
    assert not cache.agency(HCM).enabled


def test_a_certificate_removed_by_another_worker_stops_signing_within_a_second(cache, svc, clock, dev_pki):
    cert = dev_pki.agencies[HCM].signing.cert
    assert cert in cache.signing_certificates(HCM)
    with svc.db.write() as conn:
        another_worker(svc).remove_certificate(conn, HCM, pki.fingerprint(cert))
    clock.now += 1.0
    assert cache.signing_certificates(HCM) == []


def test_a_change_in_this_process_is_seen_by_the_next_look_up(cache, svc):
    assert cache.agency(Q4).enabled
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, Q4, False)
    assert not cache.agency(Q4).enabled


def test_an_agency_registered_after_a_miss_is_found(cache, svc, clock, dev_pki):
    assert cache.agency("000.00.77.H29") is None  # the miss is cached too
    with svc.db.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO agencies (code, name, organization_in_charge, enabled, client_public_key, adapter, "
                "adapter_settings, may_send_to, created_at, updated_at) SELECT '000.00.77.H29', 'New', '', "
                "enabled, client_public_key, adapter, adapter_settings, may_send_to, created_at, updated_at "
                "FROM agencies WHERE code = :c"
            ),
            {"c": HCM},
        )
        conn.execute(sa.text("UPDATE registry_generation SET generation = generation + 1"))
    clock.now += 1.0
    assert cache.agency("000.00.77.H29") is not None


def test_certificates_outside_their_validity_are_not_offered_even_when_cached(cache, dev_pki):
    cert = dev_pki.agencies[HCM].signing.cert
    assert cache.signing_certificates(HCM, at=cert.not_valid_after_utc) == []
    assert cache.signing_certificates(HCM, at=cert.not_valid_before_utc) == [cert]


def test_a_load_overtaken_by_a_change_is_answered_but_not_kept(svc, clock):
    """A request that read the registry while it changed may see the old state once; the cache must not keep it."""
    registry = svc.registry
    cache = RegistryCache(svc.db, registry, max_age=1.0, clock=clock)
    original = registry.lookup
    raced = []

    def lookup_during_a_change(conn: Any, codes: Any) -> Any:
        found = original(conn, codes)
        if not raced:
            raced.append(True)
            cache.invalidate()  # the change lands while this load is running
        return found

    registry.lookup = lookup_during_a_change  # type: ignore[method-assign]
    try:
        assert cache.agency(HCM) is not None
        with statements(svc) as seen:
            cache.agency(HCM)
        assert any("agencies" in s and "registry_generation" not in s for s in seen), "the raced load was kept"
    finally:
        registry.lookup = original  # type: ignore[method-assign]


def test_a_disabled_agency_is_refused_by_a_running_gateway_within_a_second(agency, svc):
    """End to end, on the real clock: another worker disables the caller; a second later its token stops working."""
    sender = agency(HCM)
    assert sender.get("/v1/inbox").status_code == 200
    with svc.db.write() as conn:
        another_worker(svc).set_enabled(conn, HCM, False)
    time.sleep(1.05)
    refused = sender.get("/v1/inbox")
    assert refused.status_code == 401 and refused.get_json()["code"] == "invalid-token"


def test_a_look_up_during_this_processs_own_change_is_not_kept(cache, svc, clock):
    """Review finding: a request reading while this process's change was still uncommitted kept the old rows."""
    import threading

    assert cache.agency(HCM).enabled
    clock.now += 5
    with svc.db.write() as conn:
        svc.registry.set_enabled(conn, HCM, False)  # invalidates the cache before the commit
        seen: dict[str, Any] = {}
        during = threading.Thread(target=lambda: seen.update(agency=cache.agency(HCM)))
        during.start()
        during.join()
    assert seen["agency"].enabled  # in flight during the change: the old state, once
    assert not cache.agency(HCM).enabled  # the next look-up after the commit, at the same instant
    clock.now += 0.5
    assert not cache.agency(HCM).enabled


def test_a_change_that_rolled_back_leaves_the_cache_working_after_a_second(cache, svc, clock):
    assert cache.agency(HCM).enabled
    with pytest.raises(RuntimeError), svc.db.write() as conn:
        svc.registry.set_enabled(conn, HCM, False)
        raise RuntimeError("the operator's transaction fails")
    assert cache.agency(HCM).enabled
    clock.now += 1.0
    cache.agency(HCM)
    with statements(svc) as seen:
        assert cache.agency(HCM).enabled
    assert seen == []  # cached again


def test_strings_that_cannot_be_agency_codes_are_neither_looked_up_nor_kept(cache, svc):
    """Review finding: unauthenticated client assertions named any ``iss``, and each one stayed in the cache."""
    junk = [f"x{i}-" + "A" * 5000 for i in range(50)]
    with statements(svc) as seen:
        assert cache.agencies(junk) == {}
    assert not any("agencies" in s and "registry_generation" not in s for s in seen)
    assert len(cache._agencies) == 0


def test_the_cache_starts_again_rather_than_grow_past_its_bound(cache, monkeypatch):
    from gateway.routing import registry_cache

    monkeypatch.setattr(registry_cache, "MAX_ENTRIES", 10)
    cache.agencies([f"000.00.{n:02d}.H29" for n in range(30)])  # well formed, mostly unknown
    assert len(cache._agencies) <= 10
