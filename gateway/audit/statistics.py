"""The figures the city's reports publish, per agency and period, computed from the exchange's own tables.

District reports read "received 1,657 dossiers, resolved 1,388 (83.77 %), on time 1,388/1,388
(100 %), late 0", with the processing time and the citizens' satisfaction beside.  For each agency,
over the documents routed to it in the period: received (and how many were citizens' dossiers),
acknowledged, resolved (status 06 from that agency), resolved on time or late against the
document's ``DueDate``, still open past the due date, processing time in working days
(:mod:`gateway.working_days`), documents it sent that were refused, and the ratings of its finished
dossiers.  Around them, for the whole city: the refusals by reason, a trend over the period, the
slowest agencies and the most overdue documents.

Everything is aggregated by the database, one row per (agency, day received, due date, state, day
done): the cost follows the number of agencies and days, not of documents.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.spreadsheet import csv_table
from gateway.citizen.ratings import SATISFIED
from gateway.documents.edxml import due_day
from gateway.store.db import Database
from gateway.store.helpers import as_utc
from gateway.store.tables import (
    agencies,
    audit_entries,
    audit_search,
    documents,
    dossier_ratings,
    dossiers,
    routes,
    statuses,
)
from gateway.working_days import working_days_between

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
# Submissions refused: an agency's documents and status messages (counted for the sender) and citizens'
# dossiers (counted for the city); the by-reason table reads all three, so its total is theirs.
AGENCY_REFUSALS = ("document.refused", "status.refused")
CITIZEN_REFUSALS = ("dossier.refused",)
REFUSAL_EVENTS = AGENCY_REFUSALS + CITIZEN_REFUSALS
MAX_REFUSALS_READ = 50_000  # refusal entries read for the by-reason table; beyond that it says so
LISTED = 10  # documents in the "most overdue" list, agencies in "slowest"
MAX_CHUNK = 200


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass
class AgencyFigures:
    agency: str
    received: int = 0
    acknowledged: int = 0
    done: int = 0
    on_time: int = 0
    late: int = 0
    overdue_open: int = 0
    refused_sent: int = 0
    name: str = ""
    dossiers: int = 0
    rated: int = 0
    satisfied: int = 0
    days: Counter[int] = field(default_factory=Counter, repr=False)  # working days taken → resolutions

    @property
    def unresolved(self) -> int:
        return self.received - self.done

    @property
    def done_rate(self) -> float:
        return _rate(self.done, self.received)

    @property
    def on_time_rate(self) -> float:
        return _rate(self.on_time, self.done)

    @property
    def late_rate(self) -> float:
        return _rate(self.late, self.done)

    @property
    def satisfaction_rate(self) -> float:
        return _rate(self.satisfied, self.rated)

    @property
    def average_days(self) -> float | None:
        total = sum(self.days.values())
        return round(sum(d * n for d, n in self.days.items()) / total, 1) if total else None

    @property
    def p90_days(self) -> int | None:
        """The 90th percentile by the nearest-rank method: nine in ten resolutions took at most this long."""
        total = sum(self.days.values())
        if not total:
            return None
        rank, seen = math.ceil(0.9 * total), 0
        for days in sorted(self.days):
            seen += self.days[days]
            if seen >= rank:
                return days
        return None  # unreachable: the ranks add up to total

    def add(self, other: AgencyFigures) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.days.update(other.days)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


COUNTS: tuple[str, ...] = ("received", "acknowledged", "done", "on_time", "late", "overdue_open", "refused_sent")
COUNTS += ("dossiers", "rated", "satisfied")
# The CSV's and the API's columns: the first ten as before issue 11, the new ones after them.
FIELDS = [
    "agency",
    "received",
    "acknowledged",
    "done",
    "on_time",
    "late",
    "overdue_open",
    "refused_sent",
    "done_rate",
    "on_time_rate",
    "name",
    "dossiers",
    "unresolved",
    "late_rate",
    "average_days",
    "p90_days",
    "rated",
    "satisfied",
    "satisfaction_rate",
]


@dataclass(frozen=True)
class TrendPoint:
    start: date  # the first day of the bucket (a day, a week from Monday, or a month)
    received: int
    on_time: int
    late: int


@dataclass(frozen=True)
class OverdueDocument:
    document: str  # the gateway's id: the workbench's document page
    document_id: str  # the edXML number and notation
    subject: str
    agency: str
    agency_name: str
    due_date: str
    days_overdue: int  # working days past the due date


@dataclass(frozen=True)
class RefusalCount:
    code: str
    count: int
    example: str  # the reason of the latest refusal with this code


@dataclass(frozen=True)
class Overview:
    start: date
    end: date  # the last day included
    generated_at: datetime
    city: AgencyFigures
    agencies: list[AgencyFigures]
    refusals: list[RefusalCount]
    refusals_truncated: bool
    refused_citizens: int  # citizens' dossiers refused; the agencies' own are ``city.refused_sent``
    trend: list[TrendPoint]
    trend_unit: str  # "day" | "week" | "month"
    overdue: list[OverdueDocument]

    @property
    def refused_total(self) -> int:
        """Every submission refused in the period: what the by-reason table adds up to (unless truncated)."""
        return self.city.refused_sent + self.refused_citizens

    @property
    def slowest(self) -> list[AgencyFigures]:
        # Agencies that took time: a list of agencies at 0.0 days read as a contradiction (issue 11 newcomer).
        timed = [a for a in self.agencies if a.average_days]
        return sorted(timed, key=lambda a: (-(a.average_days or 0), a.agency))[:LISTED]


def _local_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(LOCAL).date()


def _local_day_sql(conn: Connection, moment: Any) -> Any:
    """The Vietnamese calendar day (``YYYY/MM/DD``) of a stored UTC time, computed by the database."""
    if conn.dialect.name == "sqlite":  # times are stored as UTC text; Vietnam has no daylight saving
        return sa.func.strftime("%Y/%m/%d", moment, "+7 hours")
    return sa.func.to_char(sa.func.timezone("Asia/Ho_Chi_Minh", moment), "YYYY/MM/DD")


@lru_cache(maxsize=65536)  # a report reads the same few hundred days thousands of times
def _day(text: str) -> date:
    """A day the database wrote (``YYYY/MM/DD``)."""
    return date(int(text[0:4]), int(text[5:7]), int(text[8:10]))


def agency_names(conn: Connection) -> dict[str, str]:
    """Every registered agency's name by its code: reports name agencies, with the code beside."""
    return {str(code): str(name) for code, name in conn.execute(sa.select(agencies.c.code, agencies.c.name))}


def _first_done(start: datetime, end: datetime) -> Any:
    """Per (document routed in the period, agency): when that agency first returned status 06."""
    routed = (
        sa.select(routes.c.document)
        .join(documents, documents.c.id == routes.c.document)
        .where(documents.c.kind == "document", routes.c.created_at >= start, routes.c.created_at < end)
    )
    return (
        sa.select(statuses.c.document, statuses.c.from_agency, sa.func.min(statuses.c.received_at).label("first"))
        .where(statuses.c.status_code == "06", statuses.c.document.in_(routed))
        .group_by(statuses.c.document, statuses.c.from_agency)
        .subquery()
    )


def _in_period(start: datetime, end: datetime) -> Any:
    return sa.and_(documents.c.kind == "document", routes.c.created_at >= start, routes.c.created_at < end)


def trend_unit(start: date, end: date) -> str:
    span = (end - start).days + 1
    return "day" if span <= 62 else "week" if span <= 200 else "month" if span <= 1100 else "year"


def _bucket(day: date, unit: str) -> date:
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if unit == "month" else day.replace(month=1, day=1)


def _buckets(start: date, end: date, unit: str) -> list[date]:
    found, day = [], _bucket(start, unit)
    while day <= end:
        found.append(day)
        if unit in ("day", "week"):
            if date.max - day < timedelta(days=7):
                break
            day += timedelta(days=1 if unit == "day" else 7)
        elif unit == "month":
            if (day.year, day.month) == (date.max.year, 12):
                break
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        elif day.year == date.max.year:
            break  # 9999 is the calendar's last year (the API takes periods up to 9999-01-01)
        else:
            day = day.replace(year=day.year + 1)
    return found


def build_overview(conn: Connection, start: datetime, end: datetime, now: datetime) -> Overview:
    """The report for routes created in ``start``..``end`` (exclusive), judged as of ``now``."""
    figures: dict[str, AgencyFigures] = {}

    def of(agency: str) -> AgencyFigures:
        return figures.setdefault(agency, AgencyFigures(agency))

    first_day, last_day = _local_day(start), _local_day(end - timedelta(microseconds=1))
    unit = trend_unit(first_day, last_day)
    received_by: Counter[date] = Counter()
    on_time_by: Counter[date] = Counter()
    late_by: Counter[date] = Counter()
    first_done = _first_done(start, end)
    done_day = _local_day_sql(conn, first_done.c.first).label("done_day")
    received_day = _local_day_sql(conn, routes.c.created_at).label("received_day")
    acknowledged = (routes.c.state == "acknowledged").label("acknowledged")
    is_dossier = routes.c.document.in_(sa.select(dossiers.c.document)).label("is_dossier")
    today = _local_day(now)
    groups = conn.execute(
        sa.select(
            routes.c.recipient,
            documents.c.due_date,
            acknowledged,
            is_dossier,
            received_day,
            done_day,
            sa.func.count().label("n"),
        )
        .join(documents, documents.c.id == routes.c.document)
        .outerjoin(
            first_done,
            sa.and_(first_done.c.document == routes.c.document, first_done.c.from_agency == routes.c.recipient),
        )
        .where(_in_period(start, end))
        .group_by(routes.c.recipient, documents.c.due_date, acknowledged, is_dossier, received_day, done_day)
    ).all()
    for g in groups:
        f, n = of(g.recipient), int(g.n)
        f.received += n
        f.acknowledged += n if g.acknowledged else 0
        f.dossiers += n if g.is_dossier else 0
        received_by[_bucket(_day(g.received_day), unit)] += n
        due = due_day(g.due_date)
        if g.done_day is not None:
            finished = _day(g.done_day)
            f.done += n
            f.days[working_days_between(_day(g.received_day), finished)] += n
            in_time = due is None or finished <= due
            f.on_time += n if in_time else 0
            f.late += 0 if in_time else n
            if first_day <= finished <= last_day:
                (on_time_by if in_time else late_by)[_bucket(finished, unit)] += n
        elif due is not None and today > due:
            f.overdue_open += n
    start_us, end_us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    in_log_period = sa.and_(audit_search.c.time_us >= start_us, audit_search.c.time_us < end_us)
    for sender, count in conn.execute(
        sa.select(audit_search.c.sender, sa.func.count())
        .where(audit_search.c.event.in_(AGENCY_REFUSALS), audit_search.c.sender.is_not(None), in_log_period)
        .group_by(audit_search.c.sender)
    ):
        of(sender).refused_sent = int(count)
    refused_citizens = conn.execute(
        sa.select(sa.func.count()).where(audit_search.c.event.in_(CITIZEN_REFUSALS), in_log_period)
    ).scalar_one()
    _add_ratings(conn, start, end, of)
    names = agency_names(conn)
    for f in figures.values():
        f.name = names.get(f.agency, f.agency)
    city = AgencyFigures("", name="")
    for f in figures.values():
        city.add(f)
    city.rated, city.satisfied = _city_ratings(conn, start, end)
    refusals, truncated = _refusals(conn, in_log_period)
    return Overview(
        start=first_day,
        end=last_day,
        generated_at=now,
        city=city,
        agencies=sorted(figures.values(), key=lambda f: f.agency),
        refusals=refusals,
        refusals_truncated=truncated,
        refused_citizens=int(refused_citizens),
        trend=[TrendPoint(b, received_by[b], on_time_by[b], late_by[b]) for b in _buckets(first_day, last_day, unit)],
        trend_unit=unit,
        overdue=_most_overdue(conn, start, end, today, first_done, names),
    )


def _city_ratings(conn: Connection, start: datetime, end: datetime) -> tuple[int, int]:
    """Each rating once for the city, however many agencies finished the dossier: (rated, satisfied)."""
    rated = satisfied = 0
    for score, count in conn.execute(
        sa.select(dossier_ratings.c.score, sa.func.count())
        .where(dossier_ratings.c.rated_at >= start, dossier_ratings.c.rated_at < end)
        .group_by(dossier_ratings.c.score)
    ):
        rated += int(count)
        satisfied += int(count) if int(score) in SATISFIED else 0
    return rated, satisfied


def _add_ratings(conn: Connection, start: datetime, end: datetime, of: Callable[[str], AgencyFigures]) -> None:
    """Ratings given in the period count for every agency that returned 06 for the rated dossier."""
    finished_by = (
        sa.select(statuses.c.document, statuses.c.from_agency)
        .where(statuses.c.status_code == "06")
        .distinct()
        .subquery()
    )
    for agency, score, count in conn.execute(
        sa.select(finished_by.c.from_agency, dossier_ratings.c.score, sa.func.count())
        .join(dossiers, dossiers.c.id == dossier_ratings.c.dossier)
        .join(finished_by, finished_by.c.document == dossiers.c.document)
        .where(dossier_ratings.c.rated_at >= start, dossier_ratings.c.rated_at < end)
        .group_by(finished_by.c.from_agency, dossier_ratings.c.score)
    ):
        f = of(agency)
        f.rated += int(count)
        f.satisfied += int(count) if int(score) in SATISFIED else 0


def _refusals(conn: Connection, in_log_period: Any) -> tuple[list[RefusalCount], bool]:
    """Refused submissions by the stored refusal code, newest reason as the example."""
    rows = conn.execute(
        sa.select(audit_entries.c.body)
        .join(audit_search, audit_search.c.idx == audit_entries.c.idx)
        .where(audit_search.c.event.in_(REFUSAL_EVENTS), in_log_period)
        .order_by(audit_search.c.idx.desc())
        .limit(MAX_REFUSALS_READ + 1)
    ).scalars()
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    read = 0
    for body in rows:
        read += 1
        if read > MAX_REFUSALS_READ:
            break
        entry = json.loads(bytes(body))
        code = str(entry.get("code") or "unknown")
        counts[code] += 1
        examples.setdefault(code, str(entry.get("reason") or ""))
    found = [RefusalCount(code, n, examples[code]) for code, n in counts.most_common()]
    return found, read > MAX_REFUSALS_READ


def _most_overdue(
    conn: Connection, start: datetime, end: datetime, today: date, first_done: Any, names: dict[str, str]
) -> list[OverdueDocument]:
    query = (
        sa.select(
            routes.c.recipient, documents.c.id, documents.c.document_id, documents.c.subject, documents.c.due_date
        )
        .join(documents, documents.c.id == routes.c.document)
        .outerjoin(
            first_done,
            sa.and_(first_done.c.document == routes.c.document, first_done.c.from_agency == routes.c.recipient),
        )
        .where(
            _in_period(start, end),
            first_done.c.first.is_(None),
            documents.c.due_date >= "1900/01/01",  # stored before DueDate was checked: 0000/00/00 sorted first
            documents.c.due_date < today.strftime("%Y/%m/%d"),
        )
        .order_by(documents.c.due_date, documents.c.id, routes.c.recipient)
    )
    found: list[OverdueDocument] = []
    for offset in range(0, 100 * MAX_CHUNK, MAX_CHUNK):  # days that are no day (2025/13/45, stored before
        rows = list(conn.execute(query.offset(offset).limit(MAX_CHUNK)))  # DueDate was checked) are skipped
        found += _overdue(rows, names, today)
        if len(found) >= LISTED or len(rows) < MAX_CHUNK:
            break
    return found[:LISTED]


def _overdue(rows: list[Any], names: dict[str, str], today: date) -> list[OverdueDocument]:
    return [
        OverdueDocument(
            document=r.id,
            document_id=r.document_id,
            subject=r.subject,
            agency=r.recipient,
            agency_name=names.get(r.recipient, r.recipient),
            due_date=r.due_date.replace("/", "-"),
            days_overdue=working_days_between(due, today),
        )
        for r in rows
        if (due := due_day(r.due_date)) is not None
    ]


def processing_statistics(conn: Connection, start: datetime, end: datetime, now: datetime) -> list[AgencyFigures]:
    return build_overview(conn, start, end, now).agencies


class StatisticsCache:
    """Reports per period, each computed at most once a minute.

    A report scans the period's routes; the soak showed statistics requests making every other request
    slower as the log grew.  Figures that are up to a minute old are what a report needs; bounds are
    taken to the minute so that "the last 30 days until now" is one entry, not one per request.
    """

    def __init__(self, db: Database, *, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[datetime, datetime], tuple[float, Overview]] = OrderedDict()

    def overview(self, start: datetime, end: datetime, now: datetime) -> Overview:
        # Start down and end up to the minute: "until now" includes what arrived in this very minute.
        ceiling = end.replace(second=0, microsecond=0)
        key = (start.replace(second=0, microsecond=0), ceiling if ceiling == end else ceiling + timedelta(minutes=1))
        with self._lock:
            found = self._entries.get(key)
            if found is not None and self._clock() - found[0] < self._seconds:
                return found[1]
        with self._db.read() as conn:
            report = build_overview(conn, key[0], key[1], now)
        with self._lock:
            self._entries[key] = (self._clock(), report)
            self._entries.move_to_end(key)
            while len(self._entries) > 64:
                self._entries.popitem(last=False)
        return report

    def figures(self, start: datetime, end: datetime, now: datetime) -> list[AgencyFigures]:
        return self.overview(start, end, now).agencies


def as_csv(rows: Iterable[AgencyFigures]) -> str:
    """The API's CSV (``/v1/audit/statistics?format=csv``), for scripts: no byte order mark."""
    return csv_table(FIELDS, (row.as_dict() for row in rows), for_people=False)
