"""Processing statistics per agency and period — the figures district reports publish.

For each agency, over documents routed to it in the period: received, acknowledged, done (status 06
from that agency), done on time or late against the document's ``DueDate``, still open past the due
date, and documents it sent that were refused; with rates.  Computed from the exchange's own tables.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.db import Database
from gateway.store.helpers import as_utc
from gateway.store.tables import audit_search, documents, routes, statuses

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


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

    @property
    def done_rate(self) -> float:
        return round(self.done / self.received, 4) if self.received else 0.0

    @property
    def on_time_rate(self) -> float:
        return round(self.on_time / self.done, 4) if self.done else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done_rate": self.done_rate, "on_time_rate": self.on_time_rate}


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
]


def _local_day(moment: datetime) -> str:
    return as_utc(moment).astimezone(LOCAL).strftime("%Y/%m/%d")


def _local_day_sql(conn: Connection, moment: Any) -> Any:
    """The Vietnamese calendar day (``YYYY/MM/DD``) of a stored UTC time, computed by the database."""
    if conn.dialect.name == "sqlite":  # times are stored as UTC text; Vietnam has no daylight saving
        return sa.func.strftime("%Y/%m/%d", moment, "+7 hours")
    return sa.func.to_char(sa.func.timezone("Asia/Ho_Chi_Minh", moment), "YYYY/MM/DD")


def processing_statistics(conn: Connection, start: datetime, end: datetime, now: datetime) -> list[AgencyFigures]:
    """Aggregated by the database, one row per (agency, due date, state, day done): the cost follows the
    number of agencies and days, not of documents (every route was read into Python on each call, which
    the soak showed growing with the log)."""
    figures: dict[str, AgencyFigures] = {}

    def of(agency: str) -> AgencyFigures:
        return figures.setdefault(agency, AgencyFigures(agency))

    in_period = sa.and_(documents.c.kind == "document", routes.c.created_at >= start, routes.c.created_at < end)
    routed = sa.select(routes.c.document).join(documents, documents.c.id == routes.c.document).where(in_period)
    first_done = (
        sa.select(
            statuses.c.document,
            statuses.c.from_agency,
            sa.func.min(statuses.c.received_at).label("first"),
        )
        .where(statuses.c.status_code == "06", statuses.c.document.in_(routed))
        .group_by(statuses.c.document, statuses.c.from_agency)
        .subquery()
    )
    done_day = _local_day_sql(conn, first_done.c.first).label("done_day")
    acknowledged = (routes.c.state == "acknowledged").label("acknowledged")
    groups = conn.execute(
        sa.select(routes.c.recipient, documents.c.due_date, acknowledged, done_day, sa.func.count().label("n"))
        .join(documents, documents.c.id == routes.c.document)
        .outerjoin(
            first_done,
            sa.and_(first_done.c.document == routes.c.document, first_done.c.from_agency == routes.c.recipient),
        )
        .where(in_period)
        .group_by(routes.c.recipient, documents.c.due_date, acknowledged, done_day)
    ).all()
    today = _local_day(now)
    for g in groups:
        f, n = of(g.recipient), int(g.n)
        f.received += n
        f.acknowledged += n if g.acknowledged else 0
        if g.done_day is not None:
            f.done += n
            if g.due_date is None or g.done_day <= g.due_date:
                f.on_time += n
            else:
                f.late += n
        elif g.due_date is not None and today > g.due_date:
            f.overdue_open += n
    refused: dict[str, int] = defaultdict(int)
    for sender, count in conn.execute(
        sa.select(audit_search.c.sender, sa.func.count())
        .where(
            audit_search.c.event == "document.refused",
            audit_search.c.sender.is_not(None),
            audit_search.c.time_us >= int(start.timestamp() * 1e6),
            audit_search.c.time_us < int(end.timestamp() * 1e6),
        )
        .group_by(audit_search.c.sender)
    ):
        refused[sender] = int(count)
    for sender, count in refused.items():
        of(sender).refused_sent = count
    return sorted(figures.values(), key=lambda f: f.agency)


class StatisticsCache:
    """Figures per period, each computed at most once a minute.

    A report scans the period's routes; the soak showed statistics requests making every other request
    slower as the log grew.  Figures that are up to a minute old are what a report needs; bounds are
    taken to the minute so that "the last 30 days until now" is one entry, not one per request.
    """

    def __init__(self, db: Database, *, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[datetime, datetime], tuple[float, list[AgencyFigures]]] = OrderedDict()

    def figures(self, start: datetime, end: datetime, now: datetime) -> list[AgencyFigures]:
        # Start down and end up to the minute: "until now" includes what arrived in this very minute.
        ceiling = end.replace(second=0, microsecond=0)
        key = (start.replace(second=0, microsecond=0), ceiling if ceiling == end else ceiling + timedelta(minutes=1))
        with self._lock:
            found = self._entries.get(key)
            if found is not None and self._clock() - found[0] < self._seconds:
                return found[1]
        with self._db.read() as conn:
            rows = processing_statistics(conn, key[0], key[1], now)
        with self._lock:
            self._entries[key] = (self._clock(), rows)
            self._entries.move_to_end(key)
            while len(self._entries) > 64:
                self._entries.popitem(last=False)
        return rows


def as_csv(rows: list[AgencyFigures]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_dict())
    return buffer.getvalue()
