"""Single-use identifiers (JWT ``jti``): remembered until they expire, refused when seen again.

One interface, two stores: the SQL database for the embedded default and Redis when several
gateway processes share ``GATEWAY_REDIS_URL``.  Keys are (namespace, identifier) — never the
token bytes, which would let a re-encoded token slip through.
"""

from __future__ import annotations

import time
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.store.db import Database
from gateway.store.tables import replay_cache


class ReplayCache(Protocol):
    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        """Record ``key`` until ``expires_at`` (Unix seconds); ``False`` when it was already recorded."""
        ...


class SqlReplayCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        now = int(time.time())
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


class RedisReplayCache:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        ttl = max(1, expires_at - int(time.time()) + 1)
        return bool(self._redis.set(f"gw:replay:{namespace}:{key}", b"1", nx=True, ex=ttl))

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except Exception:  # any connection failure means "not ready"
            return False
