"""The calendar behind due dates and processing times, the report periods, and the trend chart's axis."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.periods import preset_days
from gateway.audit.statistics import TrendPoint
from gateway.policy import Refusal
from gateway.web.chart import nice_top, trend_chart
from gateway.working_days import add_working_days, is_working_day, working_days_between


def test_vietnams_public_holidays_are_not_working_days():
    for holiday in (date(2026, 1, 1), date(2026, 2, 17), date(2026, 4, 30), date(2026, 5, 1), date(2026, 9, 2)):
        assert not is_working_day(holiday), holiday
    assert not is_working_day(date(2026, 11, 28))  # a Saturday
    assert is_working_day(date(2026, 12, 2))


def test_a_week_with_the_april_holidays_counts_only_the_days_worked():
    # Fri 24 April 2026 to Mon 4 May: 27 April (Hùng Kings, observed), 30 April and 1 May are off.
    assert working_days_between(date(2026, 4, 24), date(2026, 5, 4)) == 3
    assert add_working_days(date(2026, 4, 24), 3) == date(2026, 5, 4)
    assert working_days_between(date(2026, 12, 2), date(2026, 12, 2)) == 0


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)), st.integers(min_value=0, max_value=400))
def test_counting_working_days_undoes_adding_them(start, days):
    assert working_days_between(start, add_working_days(start, days)) == days


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)), st.integers(min_value=0, max_value=800))
def test_the_fast_count_agrees_with_walking_the_calendar(start, span):
    end = start + timedelta(days=span)
    walked = sum(is_working_day(start + timedelta(days=i)) for i in range(1, span + 1))
    assert working_days_between(start, end) == walked


@pytest.mark.parametrize(
    ("preset", "first"),
    [
        ("week", date(2026, 11, 16)),
        ("month", date(2026, 11, 1)),
        ("quarter", date(2026, 10, 1)),
        ("half", date(2026, 7, 1)),
        ("year", date(2026, 1, 1)),
    ],
)
def test_report_periods_run_from_their_first_day_to_today(preset, first):
    assert preset_days(preset, date(2026, 11, 20)) == (first, date(2026, 11, 20))


@pytest.mark.parametrize(
    ("preset", "today", "first", "last"),
    [
        ("previous-week", date(2026, 11, 20), date(2026, 11, 9), date(2026, 11, 15)),
        ("previous-month", date(2026, 11, 20), date(2026, 10, 1), date(2026, 10, 31)),
        ("previous-month", date(2026, 3, 1), date(2026, 2, 1), date(2026, 2, 28)),
        ("previous-quarter", date(2026, 11, 20), date(2026, 7, 1), date(2026, 9, 30)),
        ("previous-quarter", date(2026, 1, 5), date(2025, 10, 1), date(2025, 12, 31)),
        ("previous-half", date(2026, 11, 20), date(2026, 1, 1), date(2026, 6, 30)),
        ("previous-half", date(2026, 3, 1), date(2025, 7, 1), date(2025, 12, 31)),
        ("previous-year", date(2026, 11, 20), date(2025, 1, 1), date(2025, 12, 31)),
    ],
)
def test_a_previous_period_is_the_whole_period_before_this_one(preset, today, first, last):
    """ "Which agencies were late last quarter" is one click, not two dates to work out."""
    assert preset_days(preset, today) == (first, last)


def test_an_unknown_period_is_refused_with_the_names_to_use():
    with pytest.raises(Refusal) as refused:
        preset_days("lastquarter", date(2026, 11, 20))
    assert "previous-quarter" in refused.value.reason


def test_the_charts_axis_ends_on_a_round_number_above_every_bar():
    assert [nice_top(v) for v in (0, 1, 3, 7, 10, 11, 180, 1657)] == [1, 1, 5, 10, 10, 20, 200, 2000]
    chart = trend_chart([TrendPoint(date(2026, 11, d), d * 10, d, 1) for d in range(1, 31)], "day")
    assert len(chart.bars) == 90 and max(b.value for b in chart.bars) == 300
    assert [t.value for t in chart.ticks] == [0, 100, 200, 300, 400, 500]
    assert all(b.y >= chart.ticks[-1].y for b in chart.bars)
    assert [
        [t.value for t in trend_chart([TrendPoint(date(2026, 1, 1), v, 0, 0)], "day").ticks] for v in (2, 20, 50)
    ] == [
        [0, 1, 2],
        [0, 5, 10, 15, 20],
        [0, 10, 20, 30, 40, 50],
    ]
    assert len(chart.labels) <= 16
