"""The period a workbench page is about: a quick pick (this week … this year) or two dates from the pickers.

The pickers send ``YYYY-MM-DD``; a day is a day in Vietnam and ``to`` includes it.  Anything else
is refused with the format to use, shown as the workbench's own error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import request

from gateway.audit.periods import LOCAL, PRESETS, local_day_bounds, preset_days
from gateway.web.reasons import PageRefusal

EARLIEST_DAY, LATEST_DAY = date(1970, 1, 2), date(9998, 12, 31)
MAX_REPORT_DAYS = 3700  # a report over ten years; one mistyped year must not cost a 35 MB page


@dataclass(frozen=True)
class ChosenPeriod:
    preset: str | None  # one of PRESETS, or None for two chosen dates
    first: date
    last: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return local_day_bounds(self.first, self.last)

    def query(self) -> dict[str, str]:
        """The query string that asks for this period again (links, exports)."""
        if self.preset is not None:
            return {"period": self.preset}
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def today() -> date:
    return datetime.now(UTC).astimezone(LOCAL).date()


def _day(name: str) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10 or not EARLIEST_DAY <= day <= LATEST_DAY:
        raise PageRefusal("invalid-request", "not-a-date", text=text[:40])
    return day


def report_period() -> ChosenPeriod:
    """The period of a report (the overview, its files): never the whole log, at most ten years."""
    period = chosen_period("month")
    if period is None:
        raise PageRefusal("invalid-request", "report-needs-period", presets=", ".join(PRESETS))
    if (period.last - period.first).days >= MAX_REPORT_DAYS:
        raise PageRefusal("invalid-request", "report-too-long")
    return period


def chosen_period(default: str | None = "month") -> ChosenPeriod | None:
    """``from``/``to`` when given, else ``period``, else ``default`` (None: no period at all)."""
    first, last = _day("from"), _day("to")
    if first is not None or last is not None:
        first, last = first or EARLIEST_DAY, last or today()
        if first > last:
            raise PageRefusal("invalid-request", "days-swapped")
        return ChosenPeriod(None, first, last)
    preset = request.args.get("period") or default
    if preset is None or preset == "all":
        return None
    if preset not in PRESETS:
        raise PageRefusal("invalid-request", "unknown-period", presets=", ".join(PRESETS))
    return ChosenPeriod(preset, *preset_days(preset, today()))
