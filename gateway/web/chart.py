"""The overview's trend chart as SVG geometry: grouped bars with a value axis, labelled values and a legend.

Drawn on the server so the page needs no script; the template only places what is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.audit.statistics import TrendPoint

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 48
SERIES = (("received", "#1f5fa8"), ("on_time", "#0a6b2d"), ("late", "#b3261e"))


@dataclass(frozen=True)
class Bar:
    series: str
    colour: str
    x: float
    y: float
    width: float
    height: float
    value: int


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class Label:
    text: str
    x: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    bottom: float  # the y of the value axis' zero
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    show_values: bool


def nice_top(value: int) -> int:
    """The axis' top: 1, 2 or 5 times a power of ten, at least ``value`` (and 1 when there is nothing)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def tick_step(top: int) -> int:
    """Whole steps between the axis' labels: 5 of them for 1×10ⁿ and 5×10ⁿ, 4 for 2×10ⁿ."""
    if top < 5:
        return 1
    return top // 4 if str(top)[0] == "2" else top // 5


def trend_chart(points: Sequence[TrendPoint], unit: str) -> Chart:
    top = nice_top(max([0, *(max(p.received, p.on_time, p.late) for p in points)]))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    zero = TOP + plot_height
    slot = plot_width / max(1, len(points))
    bar = max(1.0, slot * 0.8 / len(SERIES))
    bars: list[Bar] = []
    labels: list[Label] = []
    every = max(1, math.ceil(len(points) / 16))  # at most 16 dates under the axis
    for i, point in enumerate(points):
        x0 = LEFT + i * slot + slot * 0.1
        for j, (series, colour) in enumerate(SERIES):
            value = int(getattr(point, series))
            height = plot_height * value / top
            bars.append(
                Bar(
                    series,
                    colour,
                    round(x0 + j * bar, 1),
                    round(zero - height, 1),
                    round(bar, 1),
                    round(height, 1),
                    value,
                )
            )
        if i % every == 0:
            text = {"month": "%m/%Y", "year": "%Y"}.get(unit, "%d/%m")
            text = point.start.strftime(text)
            labels.append(Label(text, round(LEFT + i * slot + slot / 2, 1)))
    ticks = [Tick(v, round(zero - plot_height * v / top, 1)) for v in range(0, top + 1, tick_step(top))]
    return Chart(WIDTH, HEIGHT, LEFT, zero, bars, ticks, labels, show_values=bar >= 9)
