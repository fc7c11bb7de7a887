"""What every benchmark reports: figures next to a baseline measured in the same run, with their spread.

A :class:`Figure` is one line of ``bench/RESULTS.md``: the thing measured, the baseline it is compared
with, the ratio, the target from the issue that set it, and how the number was obtained (warm-up,
duration, repetitions; the median is reported and the spread is min–max over the repetitions).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rate:
    """Operations a second over several timed repetitions."""

    median: float
    low: float
    high: float
    repetitions: int
    seconds: float

    @classmethod
    def of(cls, samples: list[float], seconds: float) -> Rate:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples), seconds)

    @property
    def spread(self) -> str:
        def shown(value: float) -> str:
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"

        return f"{shown(self.low)}–{shown(self.high)}"


def rate(work: Callable[[], object], *, seconds: float, repetitions: int = 3, warmup: float = 0.5) -> Rate:
    """Calls of ``work`` a second on this thread: a warm-up, then ``repetitions`` timed runs of ``seconds``."""
    end = time.perf_counter() + warmup
    work()
    while time.perf_counter() < end:
        work()
    samples = []
    for _ in range(repetitions):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            work()
            count += 1
        samples.append(count / elapsed)
    return Rate.of(samples, seconds)


@dataclass(frozen=True)
class Figure:
    """One comparison: ``value`` of ``name`` against ``baseline_value`` of ``baseline`` (same run)."""

    benchmark: str
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    target: float | None = None  # the ratio to reach, or None when the figure is informative
    higher_is_better: bool = True
    spread: str = ""
    method: str = ""
    errors: int = 0  # non-2xx answers and failures counted while measuring
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.errors:
            return False
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def concurrent_rate(
    work: Callable[[], object], *, threads: int, seconds: float, repetitions: int = 3, warmup: float = 0.5
) -> tuple[Rate, int]:
    """Calls of ``work`` a second from ``threads`` threads at once, and how many raised (counted, not timed)."""
    errors = [0]

    def run_for(duration: float, counts: list[int], slot: int) -> None:
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            try:
                work()
            except Exception:
                errors[0] += 1
            else:
                counts[slot] += 1

    def timed(duration: float) -> float:
        counts = [0] * threads
        workers = [threading.Thread(target=run_for, args=(duration, counts, i)) for i in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - start)

    timed(warmup)
    errors[0] = 0
    samples = [timed(seconds) for _ in range(repetitions)]
    return Rate.of(samples, seconds), errors[0]
