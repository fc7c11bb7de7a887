"""Processing statistics per agency and period — the figures district reports publish.

For each agency, over documents routed to it in the period: received, acknowledged, done (status 06
from that agency), done on time or late against the document's ``DueDate``, still open past the due
date, and documents it sent that were refused; with rates.  Computed from the exchange's own tables.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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


def processing_statistics(conn: Connection, start: datetime, end: datetime, now: datetime) -> list[AgencyFigures]:
    figures: dict[str, AgencyFigures] = {}

    def of(agency: str) -> AgencyFigures:
        return figures.setdefault(agency, AgencyFigures(agency))

    in_period = sa.and_(documents.c.kind == "document", routes.c.created_at >= start, routes.c.created_at < end)
    rows = conn.execute(
        sa.select(routes.c.document, routes.c.recipient, routes.c.state, documents.c.due_date)
        .join(documents, documents.c.id == routes.c.document)
        .where(in_period)
    ).all()
    # Only the 06s about documents of the period, first one per (document, agency), in the database:
    # every 06 ever received was loaded on each call (issue 10, finding 8).
    routed = sa.select(routes.c.document).join(documents, documents.c.id == routes.c.document).where(in_period)
    done_at: dict[tuple[str, str], datetime] = {
        (s.document, s.from_agency): s.first
        for s in conn.execute(
            sa.select(statuses.c.document, statuses.c.from_agency, sa.func.min(statuses.c.received_at).label("first"))
            .where(statuses.c.status_code == "06", statuses.c.document.in_(routed))
            .group_by(statuses.c.document, statuses.c.from_agency)
        )
    }
    today = _local_day(now)
    for r in rows:
        f = of(r.recipient)
        f.received += 1
        f.acknowledged += r.state == "acknowledged"
        finished = done_at.get((r.document, r.recipient))
        if finished is not None:
            f.done += 1
            if r.due_date is None or _local_day(finished) <= r.due_date:
                f.on_time += 1
            else:
                f.late += 1
        elif r.due_date is not None and today > r.due_date:
            f.overdue_open += 1
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


def as_csv(rows: list[AgencyFigures]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_dict())
    return buffer.getvalue()
