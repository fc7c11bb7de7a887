"""Audit log throughput against the raw durable-commit rate of the same database, measured in the same run.

Method, for SQLite (WAL, synchronous=FULL, a file in a temporary folder) and PostgreSQL (a scratch
database on the local server): (a) the baseline — one-row INSERT + COMMIT transactions into a plain
table, one writer, then 4 threads; (b) single-entry audit appends (sequencer row, entry, search row,
Merkle subtree hashes) committed one per transaction, one writer, then 4 threads; (c) inclusion and
consistency proofs generated from the stored subtree hashes of a log of N entries.

    .venv/bin/python bench/audit_throughput.py [--seconds 3] [--entries 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import AuditEvent, AuditLog
from gateway.audit.checkpoint import NoteSigner
from gateway.audit.checkpoints import CheckpointLog, FixedSigner
from gateway.store import upgrade
from gateway.store.db import Database

POSTGRES_ADMIN = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
scratch = sa.Table(
    "bench_scratch", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.LargeBinary)
)
BODY = b'{"event":"document.accepted","outcome":"accepted","sender":"000.00.00.H29","v":1}' * 3


def timed(work: Callable[[], None], seconds: float, threads: int) -> float:
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def run(slot: int) -> None:
        while time.perf_counter() < deadline:
            work()
            counts[slot] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def measure(name: str, url: str, seconds: float, entries: int) -> None:
    upgrade(url)
    db, log = Database(url), AuditLog()
    with db.write() as conn:
        scratch.create(conn, checkfirst=True)

    def raw_commit() -> None:
        with db.write() as conn:
            conn.execute(sa.insert(scratch).values(body=BODY))

    def audit_append() -> None:
        with db.write() as conn:
            log.append(conn, AuditEvent("bench.append", "ok", actor="000.00.00.H29", sender="000.00.00.H29"))

    print(f"\n{name}", flush=True)
    rows = {}
    for label, work in (("raw durable commit (baseline)", raw_commit), ("audit append, one per commit", audit_append)):
        for threads in (1, 4):
            rate = timed(work, seconds, threads)
            rows[(label, threads)] = rate
            print(f"  {label:<32} {threads} writer(s) {rate:9.0f} /s", flush=True)
    for threads in (1, 4):
        ratio = rows[("audit append, one per commit", threads)] / rows[("raw durable commit (baseline)", threads)]
        print(f"  ratio audit / raw commit, {threads} writer(s)      {ratio:9.2f}")

    with db.read() as conn:
        size = log.size(conn)
    print(f"  filling the log to {entries} entries …", flush=True)
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

    for label, work in (("inclusion proofs", inclusion), ("consistency proofs", consistency)):
        print(f"  {label:<32} log of {size} {timed(work, seconds, 1):9.0f} /s", flush=True)
    print(f"  {'raw durable commit (baseline)':<32} {rows[('raw durable commit (baseline)', 1)]:9.0f} /s (same run)")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure("SQLite (WAL, synchronous=FULL)", f"sqlite:///{folder}/bench.db", args.seconds, args.entries)
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"gateway_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
        measure("PostgreSQL (local server, default durability)", url, args.seconds, args.entries)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
