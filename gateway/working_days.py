"""Working days in Vietnam: Monday to Friday, less the public holidays and the days off that replace them.

Due dates of procedures are set in working days (Decree 61/2018/NĐ-CP, Art. 4) and the city reports
measure processing time in working days, so both come from this one calendar.  The holidays are the
``holidays`` package's Vietnamese calendar (Labour Code 2019, Art. 112: New Year, Tết, Hùng Kings,
30/4, 1/5, National Day, and the substituted days off the government announces).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("VN", years=year))


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _holidays(day.year)


def add_working_days(start: date, days: int) -> date:
    """The day ``days`` working days after ``start`` (a procedure's due date)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            left -= 1
    return current


@lru_cache(maxsize=65536)
def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end``: 0 when finished the day it arrived."""
    if end <= start:
        return 0
    whole_weeks, rest = divmod((end - start).days, 7)
    count = whole_weeks * 5
    day = start + timedelta(days=whole_weeks * 7)
    for _ in range(rest):
        day += timedelta(days=1)
        count += day.weekday() < 5
    years = range(start.year, end.year + 1)
    count -= sum(1 for y in years for h in _holidays(y) if start < h <= end and h.weekday() < 5)
    return count
