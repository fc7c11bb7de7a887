"""Audit log throughput against the raw durable-commit rate of the same database, measured in the same run.

Method, for SQLite (WAL, synchronous=FULL, a file in a temporary folder) and PostgreSQL (a scratch
database on the local server, default durability):

* baseline: one-row INSERT + COMMIT transactions into a plain table, from 1 and from 16 threads;
* the gateway's audit append (sequencer row, entry, search row, Merkle subtree hashes) through the
  database's group commit (``Database.write_grouped``, what every submission and refusal uses),
  from the same numbers of threads; and, for comparison, one transaction per append;
* inclusion and consistency proofs generated from the stored subtree hashes of a log of N entries.

    .venv/bin/python bench/audit_throughput.py [--seconds 2] [--entries 20000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.measure import Figure, concurrent_rate
from gateway.audit import AuditBatch, AuditEvent, AuditLog
from gateway.audit.checkpoint import NoteSigner
from gateway.audit.checkpoints import CheckpointLog, FixedSigner
from gateway.store import upgrade
from gateway.store.db import Database

NAME = "audit"
POSTGRES_ADMIN = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
scratch = sa.Table(
    "bench_scratch", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.LargeBinary)
)
BODY = b'{"event":"document.accepted","outcome":"accepted","sender":"000.00.00.H29","v":1}' * 3
EVENT = AuditEvent("bench.append", "ok", actor="000.00.00.H29", sender="000.00.00.H29")


def measure(name: str, url: str, *, seconds: float, repetitions: int, entries: int) -> list[Figure]:
    upgrade(url)
    db, log = Database(url), AuditLog()
    db.group_commit.add_hook(AuditBatch)  # as the gateway wires it (gateway.services)
    with db.write() as conn:
        scratch.create(conn, checkfirst=True)

    def raw_commit() -> None:
        with db.write() as conn:
            conn.execute(sa.insert(scratch).values(body=BODY))

    def grouped_append() -> None:
        db.write_grouped(lambda conn: log.append(conn, EVENT))

    def own_transaction_append() -> None:
        with db.write() as conn:
            log.append(conn, EVENT)

    method = f"warm-up 0.5 s, {repetitions} × {seconds:g} s, median (min–max)"
    found = []
    for threads in (1, 16):
        raw, raw_errors = concurrent_rate(raw_commit, threads=threads, seconds=seconds, repetitions=repetitions)
        batches, units = db.group_commit.batches, db.group_commit.units
        grouped, errors = concurrent_rate(grouped_append, threads=threads, seconds=seconds, repetitions=repetitions)
        per_batch = (db.group_commit.units - units) / max(1, db.group_commit.batches - batches)
        alone, alone_errors = concurrent_rate(
            own_transaction_append, threads=threads, seconds=seconds, repetitions=repetitions
        )
        common = {"benchmark": NAME, "unit": "/s", "method": method}
        writers = f"{threads} writer{'s' if threads > 1 else ''}"
        baseline = f"raw durable commits, {writers}"
        found += [
            Figure(
                name=f"{name}: audit appends, group commit, {writers}",
                value=grouped.median,
                spread=grouped.spread,
                baseline=baseline,
                baseline_value=raw.median,
                target=0.7,
                errors=errors + raw_errors,
                notes={"appends per commit": f"{per_batch:.1f}"} if threads > 1 else {},
                **common,
            ),
            Figure(
                name=f"{name}: audit appends, one transaction each, {writers}",
                value=alone.median,
                spread=alone.spread,
                baseline=baseline,
                baseline_value=raw.median,
                errors=alone_errors,
                **common,
            ),
        ]
    with db.read() as conn:
        size = log.size(conn)
    while size < entries:
        batch = min(500, entries - size)
        with db.write() as conn:
            log.append_many(conn, [AuditEvent("bench.fill", "ok") for _ in range(batch)])
        size += batch
    rng = random.Random(7)
    checkpoints = CheckpointLog(db, FixedSigner(NoteSigner("bench/audit", Ed25519PrivateKey.generate())))

    def inclusion() -> None:
        with db.read() as conn:
            checkpoints.inclusion(conn, rng.randrange(size), size)

    def consistency() -> None:
        with db.read() as conn:
            checkpoints.consistency(conn, rng.randrange(1, size), size)

    raw, _ = concurrent_rate(raw_commit, threads=1, seconds=seconds, repetitions=repetitions)
    for label, work in (("inclusion proofs", inclusion), ("consistency proofs", consistency)):
        proofs, errors = concurrent_rate(work, threads=1, seconds=seconds, repetitions=repetitions)
        found.append(
            Figure(
                benchmark=NAME,
                name=f"{name}: {label}, log of {size:,}",
                value=proofs.median,
                unit="/s",
                spread=proofs.spread,
                baseline="raw durable commits, 1 writer",
                baseline_value=raw.median,
                errors=errors,
                method=method,
            )
        )
    db.dispose()
    return found


@contextmanager
def scratch_postgres() -> Iterator[str]:
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"gateway_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def figures(*, seconds: float = 2.0, repetitions: int = 3, entries: int = 20_000) -> list[Figure]:
    options = {"seconds": seconds, "repetitions": repetitions, "entries": entries}
    with tempfile.TemporaryDirectory() as folder:
        found = measure("SQLite", f"sqlite:///{folder}/bench.db", **options)
    with scratch_postgres() as url:
        found += measure("PostgreSQL", url, **options)
    return found


def run(quick: bool) -> list[Figure]:
    return figures(seconds=0.2, repetitions=1, entries=500) if quick else figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, one repetition, a small log")
    args = parser.parse_args()
    from bench.report import print_table

    if args.quick:
        print_table(figures(seconds=0.2, repetitions=1, entries=500))
    else:
        print_table(figures(seconds=args.seconds, entries=args.entries))


if __name__ == "__main__":
    main()
