"""Periods as people write them (``2026-11-01``, ``2026-11-23T08:00:00Z``) turned into the log's clock.

Shared by the auditor API, the workbench and ``gateway audit export``, so "from 2026-11-01 to
2026-11-30" means November — a plain date is a day in Vietnam and ``to`` includes that whole day —
wherever it is typed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.policy import Refusal
from gateway.store.tables import audit_search

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def time_bound(value: str | None, name: str) -> int | None:
    """``from``/``to`` (``name``) as microseconds since the epoch, or None when not given."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(
            "invalid-request", f"{name} must be an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T08:00:00Z"
        ) from None
    if len(value) == 10:
        try:
            moment = moment.replace(tzinfo=LOCAL) + (timedelta(days=1) if name == "to" else timedelta())
        except OverflowError:
            moment = datetime.max.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        raise Refusal("invalid-request", f"{name} needs a time zone, e.g. 2026-11-23T08:00:00+07:00")
    # Dates at the ends of the calendar (0001-01-01, 9999-12-31, odd offsets) overflow the
    # conversions below (issue 10, finding 7): anything outside the years the log can hold is refused.
    if not EARLIEST <= moment <= LATEST:
        raise Refusal("invalid-request", f"{name} must be between 1970-01-01 and 9999-01-01")
    return int(moment.timestamp() * 1_000_000)


def entries_between(conn: Connection, start_us: int | None, end_us: int | None) -> tuple[int, int] | None:
    """The first and last index of the entries in the period, or None when it holds none."""
    first, last = conn.execute(
        sa.select(sa.func.min(audit_search.c.idx), sa.func.max(audit_search.c.idx)).where(
            audit_search.c.time_us >= (start_us or 0), audit_search.c.time_us < (end_us or 2**62)
        )
    ).one()
    return None if first is None else (int(first), int(last))


CURRENT = ("week", "month", "quarter", "half", "year")
PREVIOUS_PREFIX = "previous-"
# "This quarter" to date, and the whole quarter before it: the periods leaders' reports are written for.
PRESETS = CURRENT + tuple(PREVIOUS_PREFIX + name for name in CURRENT)


def _first_day(name: str, day: date) -> date:
    """The first day of the week (from Monday), month, quarter, half-year or year that holds ``day``."""
    if name == "week":
        return day - timedelta(days=day.weekday())
    if name == "month":
        return day.replace(day=1)
    if name == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if name == "half":
        return day.replace(month=1 if day.month <= 6 else 7, day=1)
    return day.replace(month=1, day=1)


def preset_days(name: str, today: date) -> tuple[date, date]:
    """The first and last day of a quick pick.

    The current periods run to date: "this quarter" on 20 November is 1 October to 20 November.  A
    previous one is whole: "previous-quarter" on 20 November is 1 July to 30 September.
    """
    if name not in PRESETS:
        raise Refusal("invalid-request", f"period must be one of {', '.join(PRESETS)}")
    if not name.startswith(PREVIOUS_PREFIX):
        return _first_day(name, today), today
    unit = name[len(PREVIOUS_PREFIX) :]
    last = _first_day(unit, today) - timedelta(days=1)
    return _first_day(unit, last), last


def local_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """From the start of ``first`` to the end of ``last``, Vietnam's days, in UTC."""
    start = datetime.combine(first, datetime.min.time(), LOCAL).astimezone(UTC)
    return start, datetime.combine(last + timedelta(days=1), datetime.min.time(), LOCAL).astimezone(UTC)
