"""How long to wait before the next attempt: exponential back-off with jitter.

Estonia's DHX asks for exponentially growing pauses and a finite, configurable number of attempts;
"equal jitter" (half fixed, half random) keeps the growth while spreading workers that failed
together, so a receiver coming back is not hit by all of them in the same second.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_ATTEMPTS = 12
DEFAULT_BASE_SECONDS = 30
DEFAULT_MAX_SECONDS = 3600


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_seconds: float = DEFAULT_BASE_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS

    @classmethod
    def from_settings(cls, settings: dict[str, object]) -> RetryPolicy:
        """An agency's ``max_attempts`` / ``retry_base_seconds`` / ``retry_max_seconds`` adapter settings."""
        return cls(
            int(settings.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),  # type: ignore[call-overload]
            float(settings.get("retry_base_seconds", DEFAULT_BASE_SECONDS)),  # type: ignore[arg-type]
            float(settings.get("retry_max_seconds", DEFAULT_MAX_SECONDS)),  # type: ignore[arg-type]
        )

    def delay(self, attempts_made: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds to wait after the ``attempts_made``-th failed attempt (1 for the first failure)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts_made - 1))
        return float(ceiling / 2 + uniform(0, ceiling / 2))

    def exhausted(self, attempts_made: int) -> bool:
        return attempts_made >= self.max_attempts
