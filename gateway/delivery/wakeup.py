"""Waking idle workers when a push route is queued: through Redis when configured, else by polling.

The Redis list ``gw:deliveries:wake`` carries a token per submission (at most the newest 100);
each idle worker blocked on it with ``BLPOP`` takes one and looks for due routes.  A lost token
only delays delivery until the next poll, so Redis being down or restarted never loses work: the
database is the queue, Redis only shortens the wait.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import redis

WAKE_KEY = "gw:deliveries:wake"
log = logging.getLogger("gateway.delivery")


class Wakeup(Protocol):
    def notify(self) -> None: ...

    def wait(self, seconds: float) -> None: ...


class PollingWakeup:
    """No Redis: workers look again after ``seconds``; a worker in this process can be woken at once."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def notify(self) -> None:
        self._event.set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
        self._event.clear()


class RedisWakeup:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=2)
        self._fallback = PollingWakeup()

    def notify(self) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(WAKE_KEY, 1)
            pipe.ltrim(WAKE_KEY, -100, -1)
            pipe.execute()
        except redis.RedisError as exc:  # the database has the route; a worker's next poll finds it
            log.warning("delivery wake-up through Redis failed: %s", type(exc).__name__)

    def wait(self, seconds: float) -> None:
        try:
            self._redis.blpop([WAKE_KEY], timeout=max(1, int(seconds)))
        except redis.RedisError:
            self._fallback.wait(seconds)
