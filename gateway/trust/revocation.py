"""Is a signing certificate revoked?  Asked on every verification, answered from a cache.

Status comes from OCSP first (RFC 6960; the certificate's AIA, or a responder configured for its
issuing CA), then from the CRL (RFC 5280; the certificate's CDP, or configured).  The answer is
kept per certificate for a freshness window (default 3600 s, as X-Road's ``ocspFreshnessSeconds``)
and refreshed in the background once it is older than the refresh interval (default 1200 s, as
X-Road's ``ocspFetchInterval``), so a responder outage shorter than the window changes nothing and
the request path never waits on a responder once the cache is warm.

Past the window with no fresh answer the policy decides: ``refuse`` (``certificate-status-unknown``,
the default for agency signatures) or ``flag`` (accept, and the document carries the reason).  A
revoked certificate is always refused with ``certificate-revoked``.  The exact OCSP response or CRL
used travels with the decision so the caller can keep it as evidence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from cryptography import x509

from gateway.fetch import Bounds
from gateway.policy import Refusal
from gateway.trust import crl, ocsp
from gateway.trust.pki import fingerprint
from gateway.trust.status import CertStatus

log = logging.getLogger(__name__)

UnknownPolicy = Literal["refuse", "flag"]
UNAVAILABLE = frozenset({"ocsp-unavailable", "crl-unavailable"})


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RevocationSettings:
    freshness_seconds: int = 3600
    refresh_seconds: int = 1200
    unknown_policy: UnknownPolicy = "refuse"
    timeout: float = 3.0
    max_bytes: int = 1024 * 1024
    retry_failed_seconds: float = 30.0  # a failed lookup is not repeated by every request meanwhile
    # Configured sources per issuing CA, keyed by the issuer certificate's SHA-256 fingerprint.
    ocsp_responders: Mapping[str, str] = field(default_factory=dict)
    crl_urls: Mapping[str, str] = field(default_factory=dict)
    # Asked last, when the certificate's own URLs fail: demo mode's development CA at the port the
    # gateway serves now, for certificates issued while it served at another one (issue 11).
    fallback_ocsp: Mapping[str, str] = field(default_factory=dict)
    fallback_crl: Mapping[str, str] = field(default_factory=dict)
    trusted_responders: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class Decision:
    """A certificate may be relied on: ``status`` is the evidence, or ``flag`` says why there is none."""

    status: CertStatus | None
    flag: str | None = None


def _reason_text(status: CertStatus) -> str:
    when = f"{status.revoked_at:%Y-%m-%d %H:%M:%S} UTC" if status.revoked_at else "an unknown time"
    source = "OCSP responder" if status.source == "ocsp" else "CRL"
    return f"revoked at {when} (reason: {status.reason or 'unspecified'}), according to the {source}"


def refuse_if_revoked(cert: x509.Certificate, status: CertStatus) -> None:
    if status.state == "revoked":
        raise Refusal("certificate-revoked", f"certificate {cert.subject.rfc4514_string()} was {_reason_text(status)}")


class RevocationChecker:
    def __init__(
        self,
        settings: RevocationSettings,
        *,
        clock: Callable[[], datetime] = now_utc,
        generation: Callable[[], object] | None = None,
    ) -> None:
        self._settings = settings
        self._generation = generation
        self._seen_generation = generation() if generation is not None else None
        self._clock = clock
        self._bounds = Bounds(settings.timeout, settings.max_bytes)
        self._cache: dict[str, CertStatus] = {}
        self._revoked: dict[str, CertStatus] = {}
        self._fetched: dict[str, datetime] = {}
        self._failed: dict[str, tuple[datetime, Refusal]] = {}
        self._refreshing: set[str] = set()
        self._subjects: dict[str, tuple[x509.Certificate, x509.Certificate]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.lookups = 0  # network lookups made (for /metrics and the benchmark's calls per document)

    @property
    def settings(self) -> RevocationSettings:
        return self._settings

    def check(self, cert: x509.Certificate, issuer: x509.Certificate) -> Decision:
        """The status to rely on now, or :class:`Refusal` (revoked, or unknown under the ``refuse`` policy)."""
        now = self._clock()
        fp = fingerprint(cert)
        self._forget_if_generation_changed()
        with self._lock:
            cached = self._cache.get(fp)
            revoked = self._revoked.get(fp)
        if revoked is not None:  # revocation is final: no later outage or stale cache makes it unknown again
            refuse_if_revoked(cert, revoked)
        if cached is not None and self._age(fp, cached, now) <= self._settings.freshness_seconds:
            if self._age(fp, cached, now) > self._settings.refresh_seconds:
                self._refresh_later(fp, cert, issuer)
            refuse_if_revoked(cert, cached)
            return Decision(cached)
        try:
            status = self._fetch_or_recent_failure(fp, cert, issuer, now)
        except Refusal as refusal:
            return self._unknown(cert, refusal)
        refuse_if_revoked(cert, status)
        return Decision(status)

    def refresh_due(self) -> int:
        """Refresh, in this thread, every cached status older than the refresh interval; returns how many.

        Server processes call it about once a second, so statuses stay fresh even while no document
        arrives; the request path then never meets a stale entry unless the sources were away too long."""
        now = self._clock()
        with self._lock:
            due = [fp for fp, s in self._cache.items() if self._age(fp, s, now) > self._settings.refresh_seconds]
        refreshed = 0
        for fp in due:
            pair = self._subjects.get(fp)
            if pair is None or self._fetched_recently(fp):
                continue
            try:
                self._fetch_or_recent_failure(fp, *pair, now)  # a failing source is retried every 30 s, not every tick
                refreshed += 1
            except Refusal as refusal:
                log.warning("revocation status refresh failed (cached status still used): %s", refusal.reason)
        return refreshed

    # --- internals ---------------------------------------------------------------------------

    def _forget_if_generation_changed(self) -> None:
        if self._generation is None:
            return
        current = self._generation()
        if current != self._seen_generation:
            with self._lock:
                self._cache.clear()
                self._revoked.clear()
                self._failed.clear()
                self._seen_generation = current

    def _age(self, fp: str, status: CertStatus, now: datetime) -> float:
        """How old the answer counts as.  An OCSP response ages from its thisUpdate (X-Road's freshness
        rule); a CRL is published for a period, so it ages from when it was fetched and is past the
        window once its nextUpdate has gone by."""
        if status.source == "crl":
            if status.next_update is not None and now > status.next_update:
                return float("inf")
            fetched = self._fetched.get(fp, status.this_update)
            return (now - fetched).total_seconds()
        return (now - status.this_update).total_seconds()

    def _unknown(self, cert: x509.Certificate, refusal: Refusal) -> Decision:
        reason = f"revocation status of {cert.subject.rfc4514_string()} cannot be established: {refusal.reason}"
        if self._settings.unknown_policy == "flag":
            return Decision(None, flag=reason[:300])
        unavailable = refusal.code in UNAVAILABLE or refusal.code == "status-unknown"
        raise Refusal("certificate-status-unknown" if unavailable else refusal.code, reason)

    def _fetch_or_recent_failure(
        self, fp: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> CertStatus:
        with self._lock:
            failed = self._failed.get(fp)
        if failed is not None and (now - failed[0]).total_seconds() < self._settings.retry_failed_seconds:
            raise failed[1]
        try:
            return self._fetch(fp, cert, issuer, now)
        except Refusal as refusal:
            with self._lock:
                self._failed[fp] = (now, refusal)
            raise

    def _fetch(self, fp: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> CertStatus:
        """OCSP sources, then CRL sources; the first valid answer wins.  A source that answered with
        something invalid is reported in preference to one that did not answer, so a forged or stale
        response is refused under its own code."""
        failures: list[Refusal] = []
        for url, lookup in self._sources(cert, issuer, now):
            self.lookups += 1
            try:
                status = lookup()
            except Refusal as refusal:  # name the source: the certificate says where it asked
                reason = refusal.reason if url in refusal.reason else f"{url}: {refusal.reason}"
                failures.append(Refusal(refusal.code, reason))
                continue
            if status.state == "unknown":
                failures.append(Refusal("status-unknown", f"the responder at {url} does not know the certificate"))
                continue
            return self._remember(fp, cert, issuer, status)
        if not failures:
            raise Refusal("status-unknown", "the certificate names no OCSP responder or CRL, and none is configured")
        invalid = [f for f in failures if f.code not in UNAVAILABLE and f.code != "status-unknown"]
        first = invalid[0] if invalid else failures[0]
        raise Refusal(first.code, "; ".join(f.reason for f in failures))

    def _sources(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> list[tuple[str, Callable[[], CertStatus]]]:
        """Where to ask, in order: the configured OCSP responder, the AIA's, then configured and CDP CRLs."""
        issuer_fp = fingerprint(issuer)
        settings = self._settings
        fresh, bounds = settings.freshness_seconds, self._bounds
        ocsp_urls = _unique(
            [settings.ocsp_responders.get(issuer_fp), *ocsp.responder_urls(cert), settings.fallback_ocsp.get(issuer_fp)]
        )
        crl_urls = _unique(
            [settings.crl_urls.get(issuer_fp), *crl.distribution_points(cert), settings.fallback_crl.get(issuer_fp)]
        )
        found: list[tuple[str, Callable[[], CertStatus]]] = []
        for url in ocsp_urls:
            found.append(
                (
                    url,
                    partial(
                        ocsp.query,
                        url,
                        cert,
                        issuer,
                        now=now,
                        max_age=fresh,
                        bounds=bounds,
                        trusted_responders=settings.trusted_responders,
                    ),
                )
            )
        for url in crl_urls:
            found.append((url, partial(crl.fetch_crl, url, cert, issuer, now=now, max_age=fresh, bounds=bounds)))
        return found

    def _remember(self, fp: str, cert: x509.Certificate, issuer: x509.Certificate, status: CertStatus) -> CertStatus:
        with self._lock:
            if status.state == "revoked" and status.reason != "certificateHold":  # a hold may be released
                self._revoked.setdefault(fp, status)
            current = self._cache.get(fp)
            if current is None or current.this_update <= status.this_update:  # a slow refresh never rolls back
                self._cache[fp] = status
                self._fetched[fp] = self._clock()
            self._subjects[fp] = (cert, issuer)
            self._failed.pop(fp, None)
            return self._cache[fp]

    def _fetched_recently(self, fp: str) -> bool:
        """A source whose answer is already old when fetched (pre-produced responses) is not asked again
        and again: at most once per retry pause."""
        fetched = self._fetched.get(fp)
        return fetched is not None and (self._clock() - fetched).total_seconds() < self._settings.retry_failed_seconds

    def _refresh_later(self, fp: str, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        with self._lock:
            if fp in self._refreshing or self._fetched_recently(fp):
                return
            failed = self._failed.get(fp)
            if failed is not None and (self._clock() - failed[0]).total_seconds() < self._settings.retry_failed_seconds:
                return
            self._refreshing.add(fp)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="revocation-refresh")
            pool = self._pool

        def refresh() -> None:
            try:
                self._fetch_or_recent_failure(fp, cert, issuer, self._clock())
            except Refusal as refusal:
                log.warning("revocation status refresh failed (cached status still fresh): %s", refusal.reason)
            except Exception:
                log.exception("revocation status refresh crashed")
            finally:
                with self._lock:
                    self._refreshing.discard(fp)

        pool.submit(refresh)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """For tests and shutdown: until background refreshes have finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._refreshing:
                    return
            time.sleep(0.02)


def _unique(urls: list[str | None]) -> list[str]:
    seen: list[str] = []
    for url in urls:
        if url and url not in seen:
            seen.append(url)
    return seen
