"""Short-lived shared state: single-use identifiers (JWT ``jti``) and rate limits.

One interface, two stores: the SQL database for the embedded default, and Redis when several
gateway processes share ``GATEWAY_REDIS_URL``.  Replay keys are (namespace, identifier) — never
the token bytes, which would let a re-encoded token slip through.  Rate limits are fixed windows,
counted atomically in the store so every gateway process sees the same count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gateway.store.db import Database
from gateway.store.tables import rate_limits, replay_cache

log = logging.getLogger("gateway")


class StateUnavailable(Exception):
    """The shared state store cannot be reached; callers answer 503 and nothing was decided."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


class ReplayCache(Protocol):
    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        """Record ``key`` until ``expires_at`` (Unix seconds); ``False`` when it was already recorded."""
        ...


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: int) -> RateDecision:
        """Count one event for ``key``; refused once ``limit`` events happened in the current window."""
        ...


class StateStore(ReplayCache, RateLimiter, Protocol):
    def ping(self) -> bool: ...


def _window(window: int, clock: Callable[[], float]) -> tuple[int, int]:
    now = int(clock())
    start = now - now % window
    return start, start + window - now


class SqlStateStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._db = db

    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        now = int(self._clock())
        try:
            with self._db.write() as conn:
                conn.execute(
                    sa.delete(replay_cache).where(
                        replay_cache.c.namespace == namespace,
                        replay_cache.c.key == key,
                        replay_cache.c.expires_at < now,
                    )
                )
                conn.execute(sa.insert(replay_cache).values(namespace=namespace, key=key, expires_at=expires_at))
                if now % 64 == 0:  # occasional sweep keeps the table small without a background job
                    conn.execute(sa.delete(replay_cache).where(replay_cache.c.expires_at < now))
        except IntegrityError:
            return False
        return True

    def hit(self, key: str, limit: int, window: int) -> RateDecision:
        start, remaining = _window(window, self._clock)
        with self._db.write() as conn:
            dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(rate_limits).values(key=key, window_start=start, count=1)
            same_window = rate_limits.c.window_start == insert.excluded.window_start
            row = conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[rate_limits.c.key],
                    set_={
                        "count": sa.case((same_window, rate_limits.c.count + 1), else_=1),
                        "window_start": insert.excluded.window_start,
                    },
                ).returning(rate_limits.c.count)
            ).one()
        allowed = int(row[0]) <= limit
        return RateDecision(allowed, 0 if allowed else remaining)

    def ping(self) -> bool:
        return self._db.ping()


class RedisStateStore:
    """Redis being away is survivable: single use cannot be promised, so those checks answer 503
    (``state-unavailable``) and the client retries; rate limits let requests through meanwhile,
    since refusing all work to protect against overload would be the outage itself."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        ttl = max(1, expires_at - int(self._clock()) + 1)
        try:
            return bool(self._redis.set(f"gw:replay:{namespace}:{key}", b"1", nx=True, ex=ttl))
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis is unreachable ({type(exc).__name__})") from None

    def hit(self, key: str, limit: int, window: int) -> RateDecision:
        start, remaining = _window(window, self._clock)
        name = f"gw:rate:{key}:{start}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window + 1)
        try:
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning("rate limit %s not counted: Redis is unreachable (%s)", key.split(":")[0], type(exc).__name__)
            return RateDecision(True, 0)
        allowed = count <= limit
        return RateDecision(allowed, 0 if allowed else remaining)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except Exception:  # any connection failure means "not ready"
            return False


class ProcessRateLimiter:
    """Fixed windows counted in this process's memory: the embedded default's per-request limits.

    Counting in the database cost a write transaction on every submission (issue 12: ~1.2 ms, one of
    six commits per document).  Without Redis each server process counts on its own, so across
    ``gateway serve --workers N`` an agency may send up to N × the limit in a window — the bound the
    README states.  Keys beyond ``max_keys`` evict the least recently used (a flood of names cannot
    grow memory); an evicted key starts a fresh count, which only ever allows more, never refuses.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._counts: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key → (window start, count)

    def hit(self, key: str, limit: int, window: int) -> RateDecision:
        start, retry_after = _window(window, self._clock)
        with self._lock:
            began, count = self._counts.pop(key, (start, 0))
            count = count + 1 if began == start else 1
            self._counts[key] = (start, count)
            while len(self._counts) > self._max_keys:
                self._counts.popitem(last=False)
        return RateDecision(True, 0) if count <= limit else RateDecision(False, max(1, retry_after))
