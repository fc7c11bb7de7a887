"""The registry as the request path reads it: cached in each process, never more than a second stale.

Every submission asks who the caller is, whether it is enabled, which certificates it may sign
with and whom it may send to.  Asking the database each time cost three read transactions per
document (issue 12); the registry changes a few times a day.  So each process keeps what it read
and, at most once per ``max_age`` seconds, reads one number: the registry generation, which every
registry write increments in its own transaction (:meth:`AgencyRegistry._changed`).  A changed
number empties the cache.  A disabled agency, a removed certificate or a rotated key therefore
takes effect within ``max_age`` seconds of its commit in every worker on every host, and at once
for the next request of the process that made the change.

Correctness under concurrency rests on two orderings.  The generation is read before the rows it
covers, so rows are never older than the generation recorded with them.  And a load that began
before the cache was emptied is not kept, by comparing a local epoch taken at its start: a request
in flight during a change may see the old state, the cache never keeps it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography import x509

from gateway.documents.identifiers import is_agency_code
from gateway.routing.registry import Agency, AgencyRegistry
from gateway.store.db import Database
from gateway.store.helpers import as_utc
from gateway.store.tables import agency_certificates, registry_generation

MAX_ENTRIES = 20_000  # a city has hundreds of agencies; misses for well-formed unknown codes are kept too


@dataclass(frozen=True)
class _SigningCertificate:
    certificate: x509.Certificate
    not_before: datetime
    not_after: datetime


class RegistryCache:
    """Agencies and their signing certificates, read through a per-process cache."""

    def __init__(
        self,
        db: Database,
        registry: AgencyRegistry,
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._registry = registry
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._checked_at = float("-inf")
        self._epoch = 0
        self._awaiting: tuple[int | None, float] | None = None  # (generation before, when) of a local change
        self._agencies: dict[str, Agency | None] = {}
        self._certificates: dict[str, tuple[_SigningCertificate, ...]] = {}
        registry.on_change(self.invalidate)

    def invalidate(self) -> None:
        """This process is changing the registry: forget everything and keep nothing until the change shows.

        Called inside the changing transaction, before it commits: a look-up in that window reads the old
        rows and the old generation, and keeping them would hide the change for a second in the very
        process that made it (review finding).  Until the generation moves — or ``max_age`` passes, if the
        change rolled back — every look-up reads the database and nothing read is kept."""
        with self._lock:
            self._forget()
            self._awaiting = (self._generation, self._clock())
            self._checked_at = float("-inf")

    def agencies(self, codes: Sequence[str]) -> dict[str, Agency]:
        """The registered agencies among ``codes`` (enabled or not), without their certificates."""
        # Only what can be an agency code is looked up or remembered: the codes come from unauthenticated
        # client assertions and from documents, and a cache of every string sent would grow without end
        # (review finding).  The registry refuses any other code, so none is registered.
        codes = [code for code in codes if is_agency_code(code)]
        epoch = self._fresh_epoch()
        cached = self._agencies  # one snapshot: an emptying in between must not read as "not registered"
        missing = [code for code in dict.fromkeys(codes) if code not in cached]
        if missing:
            with self._db.read() as conn:
                found = self._registry.lookup(conn, missing)
            loaded = {code: found.get(code) for code in missing}
            self._keep(epoch, lambda: self._agencies.update(loaded))
        else:
            loaded = {}
        result: dict[str, Agency] = {}
        for code in codes:
            agency = loaded[code] if code in loaded else cached.get(code)
            if agency is not None:
                result[code] = agency
        return result

    def agency(self, code: str) -> Agency | None:
        return self.agencies([code]).get(code)

    def signing_certificates(self, code: str, *, at: datetime | None = None) -> list[x509.Certificate]:
        """The agency's certificates that may sign at ``at`` (now): not removed, within their validity, newest first."""
        epoch = self._fresh_epoch()
        registered = self._certificates.get(code)
        if registered is None:
            registered = self._load_certificates(code)
            self._keep(epoch, lambda: self._certificates.__setitem__(code, registered))
        now = at or datetime.now(UTC)
        return [c.certificate for c in registered if c.not_before <= now < c.not_after]

    # --- the generation check ---------------------------------------------------------------

    def _fresh_epoch(self) -> int:
        """Empty the cache if the registry changed since the last check (read at most once per ``max_age``)."""
        now = self._clock()
        with self._lock:
            if now - self._checked_at < self._max_age:
                return self._epoch
            epoch = self._epoch
        with self._db.read() as conn:
            generation = int(
                conn.execute(
                    sa.select(registry_generation.c.generation).where(registry_generation.c.id == 1)
                ).scalar_one()
            )
        with self._lock:
            if self._epoch == epoch:  # no invalidation raced with this check
                if self._awaiting is not None:
                    before, since = self._awaiting
                    if (before is None or generation == before) and now - since < self._max_age:
                        return self._epoch  # the local change has not committed yet: check again next time
                    self._awaiting = None
                if generation != self._generation:
                    self._forget()
                    self._generation = generation
                self._checked_at = now
            return self._epoch

    def _forget(self) -> None:
        self._agencies = {}
        self._certificates = {}
        self._epoch += 1

    def _keep(self, epoch: int, store: Callable[[], None]) -> None:
        """Keep what a load read unless the cache was emptied while it ran (it may be older than the change)."""
        with self._lock:
            if self._epoch == epoch and self._awaiting is None:
                store()
                if len(self._agencies) + len(self._certificates) > MAX_ENTRIES:
                    self._forget()  # well-formed unknown codes by the thousand: start again rather than grow

    def _load_certificates(self, code: str) -> tuple[_SigningCertificate, ...]:
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    agency_certificates.c.fingerprint, agency_certificates.c.not_before, agency_certificates.c.not_after
                )
                .where(agency_certificates.c.agency_code == code, agency_certificates.c.removed_at.is_(None))
                .order_by(agency_certificates.c.added_at.desc(), agency_certificates.c.not_after.desc())
            ).all()
            certificates = self._registry.parsed_certificates(conn, [row.fingerprint for row in rows])
        return tuple(
            _SigningCertificate(certificates[row.fingerprint], as_utc(row.not_before), as_utc(row.not_after))
            for row in rows
        )
