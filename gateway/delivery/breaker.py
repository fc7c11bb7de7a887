"""A circuit breaker per receiving agency, so a dead endpoint is not hammered by every due route.

Closed: attempts go through.  After ``threshold`` consecutive retryable failures it opens for
``cooldown`` seconds, during which the worker postpones that agency's routes without spending an
attempt.  Then one trial attempt is let through (half-open): success closes it, failure reopens it.
Each worker process keeps its own breakers; with several workers each stops on its own evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    trial_running: bool = False


@dataclass
class CircuitBreakers:
    threshold: int = 5
    cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)

    def allows(self, agency: str) -> float | None:
        """``None`` when an attempt may go ahead, else the seconds until the breaker lets one through."""
        state = self._states.get(agency)
        if state is None or state.failures < self.threshold:
            return None
        now = self.clock()
        if now < state.open_until:
            return state.open_until - now
        if state.trial_running:
            return self.cooldown
        state.trial_running = True  # half-open: this one attempt is the trial
        return None

    def succeeded(self, agency: str) -> None:
        self._states.pop(agency, None)

    def failed(self, agency: str) -> None:
        state = self._states.setdefault(agency, _State())
        state.failures += 1
        state.trial_running = False
        if state.failures >= self.threshold:
            state.open_until = self.clock() + self.cooldown

    def is_open(self, agency: str) -> bool:
        state = self._states.get(agency)
        return state is not None and state.failures >= self.threshold
