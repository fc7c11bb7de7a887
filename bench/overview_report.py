"""How long the leaders' overview takes to compute, against the report it replaced, on the same database.

Seeds a SQLite database with ``--documents`` letters (two recipients each, about half finished with
status 06 on a later day, a tenth refused submissions in the log) over one month, then times, on that
one file: the baseline ``processing_statistics`` of ``--baseline-ref`` (a git worktree, run in its own
process) and this tree's ``build_overview`` (figures, working-day times, ratings, refusals by reason,
trend, most overdue).  Prints the median of ``--repeat`` runs of each and their ratio.

    .venv/bin/python bench/overview_report.py --documents 20000 --baseline-ref 6957184
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.deployment import remove_worktree, worktree  # noqa: E402
from bench.measure import Figure  # noqa: E402
from bench.report import print_table  # noqa: E402
from gateway.audit import AuditEvent, AuditLog  # noqa: E402
from gateway.store import upgrade  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from gateway.store.tables import agencies, blobs, documents, routes, statuses  # noqa: E402

AGENCIES = [f"000.00.{n:02d}.H29" for n in range(1, 25)]
START = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=7)  # 1 November in Vietnam
TIMER = """
import json, statistics, sys, time
from datetime import datetime
from gateway.store.db import Database
from gateway.audit.statistics import processing_statistics
db = Database(sys.argv[1]); start, end, now = (datetime.fromisoformat(a) for a in sys.argv[2:5])
times = []
for _ in range(int(sys.argv[5])):
    t = time.perf_counter()
    with db.read() as conn:
        rows = processing_statistics(conn, start, end, now)
    times.append(time.perf_counter() - t)
print(json.dumps({"median": statistics.median(times), "agencies": len(rows)}))
"""


def seed(url: str, count: int, rng: random.Random) -> None:
    upgrade(url)
    db = Database(url)
    now = datetime.now(UTC)
    with db.write() as conn:
        conn.execute(sa.insert(blobs).values(sha256="0" * 64, size=1, content=b"x"))
        conn.execute(
            sa.insert(agencies),
            [
                {
                    "code": code,
                    "name": f"Ủy ban nhân dân {code}",
                    "client_public_key": "",
                    "adapter_settings": {},
                    "may_send_to": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for code in AGENCIES
            ],
        )
        docs, route_rows, status_docs, status_rows = [], [], [], []
        for n in range(count):
            received = START + timedelta(seconds=rng.randrange(29 * 86400))
            doc, sender = str(uuid.uuid4()), rng.choice(AGENCIES)
            due = (received + timedelta(days=rng.randrange(3, 15))).strftime("%Y/%m/%d")
            docs.append(_document(doc, "document", sender, f"{sender},2026/11/01,{n}/UBND", due, received))
            for recipient in rng.sample([a for a in AGENCIES if a != sender], 2):
                route_rows.append(
                    {
                        "document": doc,
                        "recipient": recipient,
                        "adapter": "inbox",
                        "state": "pending",
                        "created_at": received,
                    }
                )
                if rng.random() < 0.5:
                    message = str(uuid.uuid4())
                    done = received + timedelta(hours=rng.randrange(1, 20 * 24))
                    status_docs.append(_document(message, "status", recipient, f"s{n}{recipient}", None, done))
                    status_rows.append(
                        {
                            "message": message,
                            "document": doc,
                            "from_agency": recipient,
                            "status_code": "06",
                            "received_at": done,
                        }
                    )
        for table, rows in ((documents, docs + status_docs), (routes, route_rows), (statuses, status_rows)):
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[i : i + 5000])
        log = AuditLog()
        refusals = [
            AuditEvent(
                event="document.refused", outcome="refused", sender=rng.choice(AGENCIES), code=code, reason="bench"
            )
            for code in rng.choices(["signature-invalid", "schema-invalid", "certificate-expired"], k=count // 10)
        ]
        for i in range(0, len(refusals), 1000):
            log.append_many(conn, refusals[i : i + 1000], now=START + timedelta(days=3))
    db.dispose()


def _document(doc: str, kind: str, sender: str, number: str, due: str | None, received: datetime) -> dict[str, object]:
    return {
        "id": doc,
        "kind": kind,
        "sender": sender,
        "document_id": number,
        "sha256": "0" * 64,
        "subject": "V/v báo cáo",
        "due_date": due,
        "signature_algorithm": "rsa-sha256",
        "signer_fingerprint": "0" * 64,
        "received_at": received,
        "audit_index": 0,
        "seal": b"",
    }


NAME = "overview"


def figures(*, documents: int = 20000, repeat: int = 5, baseline_ref: str = "6957184") -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="overview-bench-"))
    url = f"sqlite:///{home / 'gw.db'}"
    print(f"seeding {documents} documents ({2 * documents} routes) …", file=sys.stderr)
    seed(url, documents, random.Random(7))
    start, end, now = START, START + timedelta(days=30), START + timedelta(days=30)
    print(f"baseline: processing_statistics at {baseline_ref} …", file=sys.stderr)
    tree = worktree(baseline_ref)
    try:
        answer = subprocess.run(
            [sys.executable, "-c", TIMER, url, start.isoformat(), end.isoformat(), now.isoformat(), str(repeat)],
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        remove_worktree(tree)
    baseline = json.loads(answer.stdout)
    from gateway.audit.statistics import build_overview

    db, times = Database(url), []
    print("this tree: build_overview …", file=sys.stderr)
    for _ in range(repeat):
        began = time.perf_counter()
        with db.read() as conn:
            report = build_overview(conn, start, end, now)
        times.append(time.perf_counter() - began)
    db.dispose()
    return [
        Figure(
            benchmark=NAME,
            name=f"leaders' overview of a month, {documents:,} documents",
            value=statistics.median(times) * 1000,
            unit="ms",
            spread=f"{min(times) * 1000:.0f}–{max(times) * 1000:.0f}",
            baseline=f"processing_statistics of {baseline_ref} (the report it replaced)",
            baseline_value=baseline["median"] * 1000,
            higher_is_better=False,
            method=f"SQLite, median of {repeat} runs on one seeded file",
            notes={
                "agencies": len(report.agencies),
                "handlings": report.city.received,
                "refusals read": sum(r.count for r in report.refusals),
            },
        )
    ]


def run(quick: bool) -> list[Figure]:
    return figures(documents=300, repeat=1) if quick else figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-ref", default="6957184")
    args = parser.parse_args()
    print_table(figures(documents=args.documents, repeat=args.repeat, baseline_ref=args.baseline_ref))


if __name__ == "__main__":
    main()
