"""Documents accepted per second through POST /v1/documents under gunicorn, against baselines of the same run.

Method: a fresh embedded deployment (SQLite, WAL) with the demo agencies is served by
``gateway serve --workers 2``.  Before timing, the client signs N distinct copies of the 6 KB
``cong-van.edxml`` sample (RSA-2048, rsa-sha256) so signing cost is not measured.  C client
processes with keep-alive connections then POST them for a fixed time.  In the same run and with
the same clients, the server's trivial ``/healthz`` endpoint is measured: the printed ratio says
what fraction of the server's bare request capacity a verified, sealed, audited submission costs.
A second baseline is the in-process cost of our signature verification alone (one core).

The per-agency rate limit is raised out of the way and every non-2xx answer is counted and shown.
With ``--baseline-ref REV`` the same measurement first runs on a git worktree of REV (e.g. the
commit before a change), so "before" and "after" come from the same run on the same machine.
After each run the database says how many OCSP responses and TSA tokens the documents needed.

The client processes share the machine's cores with the server, so absolute figures are a floor.

    .venv/bin/python bench/submit_throughput.py [--seconds 10] [--clients 4] [--baseline-ref 25cbe95]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/submit_throughput.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deployment import ROOT, DemoDeployment, remove_worktree, worktree
from bench.measure import Figure

SAMPLE = ROOT / "examples" / "cong-van.edxml"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def hammer(
    port: int, path: str, bodies: list[bytes], token: str, seconds: float, queue: mp.Queue, interval: float = 0
) -> None:  # type: ignore[type-arg]
    """Requests one after another on one keep-alive connection; ``interval`` > 0 paces them (open loop)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    done, bad, latencies, first_error = 0, 0, [], ""
    deadline = time.perf_counter() + seconds
    i = 0
    next_at = time.perf_counter()
    while time.perf_counter() < deadline:
        body = bodies[i % len(bodies)] if bodies else None
        i += 1
        if interval:
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        start = time.perf_counter()
        conn.request("POST" if body else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status in (200, 202):
            done += 1
        else:
            bad += 1
            first_error = first_error or f"{response.status} {answer[:300].decode(errors='replace')}"
    queue.put((done, bad, latencies, first_error))


def run_load(
    port: int, path: str, per_client: list[list[bytes]], token: str, seconds: float, rate: float = 0
) -> dict[str, float]:
    """``rate`` > 0: that many requests a second in all, spread over the clients; else as fast as answered."""
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    interval = len(per_client) / rate if rate else 0
    procs = [
        mp.Process(target=hammer, args=(port, path, bodies, token, seconds, queue, interval)) for bodies in per_client
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    errors = [r[3] for r in results if r[3]]
    if errors:
        print(f"  {bad} non-2xx answers; the first: {errors[0]}", flush=True)
    return {"per_second": done / seconds, "errors": bad, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


@dataclass
class Run:
    label: str
    size: int = 0
    verify_rate: float = 0.0
    trivial: dict[str, float] = field(default_factory=dict)
    submit: dict[str, float] = field(default_factory=dict)
    half: dict[str, float] = field(default_factory=dict)  # paced at half the saturated rate
    counts: dict[str, int] = field(default_factory=dict)


def _token(port: int, keys: Path, code: str = "000.00.00.H29") -> str:
    """An access token for agency ``code`` from its development client key in ``keys``."""
    import jwt

    from gateway.trust import pki

    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": code,
            "sub": code,
            "aud": f"http://127.0.0.1:{port}/oauth/token",
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        pki.load_private_key(keys / "client.key"),
        algorithm="ES256",
    )
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request(
        "POST",
        "/oauth/token",
        body=f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return str(json.loads(c.getresponse().read())["access_token"])


def _counts(db: Path) -> dict[str, int]:
    """What the run left in the database: documents, and the OCSP responses and TSA tokens it needed."""
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts = {"documents": conn.execute("SELECT count(*) FROM documents").fetchone()[0]}
        if "trust_evidence" in tables:
            for kind, n in conn.execute("SELECT kind, count(*) FROM trust_evidence GROUP BY kind"):
                counts[f"evidence_{kind}"] = n
            counts["timestamp_batches"] = conn.execute("SELECT count(*) FROM timestamp_batches").fetchone()[0]
            counts["checkpoint_timestamps"] = conn.execute("SELECT count(*) FROM checkpoint_timestamps").fetchone()[0]
            counts["untimestamped"] = conn.execute(
                "SELECT count(*) FROM documents WHERE timestamp_batch IS NULL"
            ).fetchone()[0]
    return counts


def measure(
    label: str,
    code: Path,
    seconds: float,
    clients: int,
    settings: dict[str, str] | None = None,
    on_ready: Callable[[DemoDeployment], None] | None = None,
) -> Run:
    """One fresh deployment of the code in ``code`` (embedded unless ``settings`` say otherwise);
    ``on_ready`` runs once it serves, before anything is timed (e.g. to start its witnesses)."""
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki

    run = Run(label)
    deployment = DemoDeployment(
        code,
        settings={
            # The bench measures the gateway, not the per-agency rate limit (600 a minute by default).
            "GATEWAY_AGENCY_SUBMISSIONS_PER_MINUTE": str(10**9),
            "GATEWAY_ACCESS_TOKEN_TTL": "3600",
            **(settings or {}),
        },
    )
    home, port = deployment.home, deployment.port
    try:
        if on_ready is not None:
            on_ready(deployment)
        keys = home / "keys" / "agencies" / "000.00.00.H29"
        signing_key = pki.load_private_key(keys / "signing.key")
        chain = pki.load_certificates(keys / "signing.crt")
        token = _token(port, keys)
        unsigned = SAMPLE.read_bytes()
        estimated = int(seconds * 600) + 200
        print(f"[{label}] signing {estimated} distinct documents before timing …", flush=True)
        bodies = []
        for n in range(estimated):
            data = unsigned.replace(b"1024/UBND-VX</edXML:DocumentId>", f"{n}/UBND-VX</edXML:DocumentId>".encode())
            bodies.append(sign_edxml(data, signing_key, chain))
            if n % 1000 == 0:
                print(f"  {n}/{estimated}", flush=True)
        run.size = len(bodies[0])
        run.verify_rate = _verify_rate(home, bodies, chain)
        print(f"[{label}] GET /healthz for {seconds:.0f}s with {clients} clients …", flush=True)
        run.trivial = run_load(port, "/healthz", [[] for _ in range(clients)], token, seconds)
        # Warm-up: the first submission fetches the signer's OCSP status; the cache serves the rest.
        warm = run_load(port, "/v1/documents", [bodies[-1:]], token, 0.5)
        print(f"[{label}] POST /v1/documents for {seconds:.0f}s with {clients} clients …", flush=True)
        shards = [bodies[i : len(bodies) - 1 : clients] for i in range(clients)]
        run.submit = run_load(port, "/v1/documents", shards, token, seconds)
        run.submit["warm_up_errors"] = warm["errors"]
        used = int(run.submit["per_second"] * seconds) + 1
        if used >= (len(bodies) - 1) * 0.95:
            print("warning: clients ran out of distinct documents; later posts were duplicates", flush=True)
        rest = bodies[used:-1]
        half = run.submit["per_second"] / 2
        print(f"[{label}] POST /v1/documents at {half:.0f}/s (half of that) for {seconds:.0f}s …", flush=True)
        run.half = run_load(port, "/v1/documents", [rest[i::clients] for i in range(clients)], token, seconds, half)
        time.sleep(3)  # let the last timestamping pass and checkpoint happen before counting
    finally:
        deployment.stop()
    if (home / "gw.db").exists():
        run.counts = _counts(home / "gw.db")
    return run


def _verify_rate(home: Path, bodies: list[bytes], chain: list[Any]) -> float:
    """Baseline: in-process signature verification alone, one core, cycling over the signed bodies."""
    from gateway.documents import edxml, xmlsafe
    from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
    from gateway.trust import pki
    from gateway.trust.chain import TrustStore

    verifier = EnvelopedSignatureVerifier(
        TrustStore(pki.load_certificates(home / "keys" / "ca.crt")),
        SignatureProfile(),
        f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}",
    )
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 3:
        body = bodies[count % len(bodies)]
        verifier.verify(body, xmlsafe.parse(body), chain)
        count += 1
    return count / (time.perf_counter() - start)


def report(runs: list[Run]) -> None:
    print()
    first = runs[0]
    print(f"document size {first.size} bytes, RSA-2048 rsa-sha256, SQLite WAL, gunicorn 2 workers, same machine")
    row = "{:<28} {:>10} {:>10} {:>9} {:>9} {:>7} {:>9}"
    print(row.format("code", "healthz/s", "accepted/s", "p50 ms", "p99 ms", "non-2xx", "ratio"))
    for r in runs:
        t, d = r.trivial, r.submit
        print(
            row.format(
                r.label,
                f"{t['per_second']:.0f}",
                f"{d['per_second']:.1f}",
                f"{d['p50_ms']:.1f}",
                f"{d['p99_ms']:.1f}",
                f"{d['errors'] + t['errors']:.0f}",
                f"{d['per_second'] / t['per_second']:.4f}",
            )
        )
    for r in runs:
        print(f"[{r.label}] in-process verify {r.verify_rate:.0f}/s; database after the run: {r.counts}")
    if len(runs) == 2:
        before, after = runs
        rate = after.submit["per_second"] / before.submit["per_second"]
        normalised = (after.submit["per_second"] / after.trivial["per_second"]) / (
            before.submit["per_second"] / before.trivial["per_second"]
        )
        print(
            f"accepted/s, {after.label} / {before.label}: {rate:.3f} (each against its own /healthz: {normalised:.3f})"
        )
    current = runs[-1].counts
    documents = max(1, current.get("documents", 0))
    if "timestamp_batches" in current:
        print(
            f"OCSP responses fetched per accepted document: {current.get('evidence_ocsp', 0) / documents:.5f}; "
            f"TSA calls per accepted document: {current['timestamp_batches'] / documents:.5f} "
            f"(+{current['checkpoint_timestamps']} for checkpoints; {current['untimestamped']} left untimestamped)"
        )


NAME = "submission"


def figures(*, seconds: float = 10.0, clients: int = 4, scale_out: bool = True) -> list[Figure]:
    """Embedded (SQLite) and, with ``scale_out``, PostgreSQL + Redis: each against its own ``/healthz``."""
    from bench.audit_throughput import scratch_postgres

    runs = [("SQLite", 0.30, measure("SQLite", ROOT, seconds, clients))]
    if scale_out:
        with scratch_postgres() as url:
            redis = {"GATEWAY_DATABASE_URL": url, "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/11"}
            runs.append(("PostgreSQL + Redis", 0.25, measure("PostgreSQL + Redis", ROOT, seconds, clients, redis)))
    found = []
    for store, target, r in runs:
        method = (
            f"{r.size:,}-byte documents (RSA-2048), gunicorn 2 workers, {clients} client processes with keep-alive, "
            f"{seconds:g} s each, one repetition"
        )
        common = {"benchmark": NAME, "method": method}
        found += [
            Figure(
                name=f"accepted documents, {store}",
                value=r.submit["per_second"],
                unit="/s",
                baseline="GET /healthz, same server and clients",
                baseline_value=r.trivial["per_second"],
                target=target,
                errors=int(r.submit["errors"] + r.trivial["errors"] + r.submit.get("warm_up_errors", 0)),
                notes={
                    "saturated p50 / p99 ms": f"{r.submit['p50_ms']:.1f} / {r.submit['p99_ms']:.1f}",
                    "in-process verification alone": f"{r.verify_rate:,.0f}/s",
                    **({"database after the run": r.counts} if r.counts else {}),
                },
                **common,
            ),
            Figure(
                name=f"p99 latency at half of peak, {store}",
                value=r.half["p99_ms"],
                unit="ms",
                baseline="the issue's bound",
                baseline_value=50.0,
                target=1.0,
                higher_is_better=False,
                errors=int(r.half["errors"]),
                notes={"paced at": f"{r.submit['per_second'] / 2:.0f}/s", "p50 ms": f"{r.half['p50_ms']:.1f}"},
                **common,
            ),
        ]
    return found


def run(quick: bool) -> list[Figure]:
    return figures(seconds=1.0, clients=2, scale_out=False) if quick else figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a smoke run of the figures python -m bench reports")
    parser.add_argument(
        "--baseline-ref",
        help="Also measure this git revision (e.g. the commit before a change) in the same run, first.",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.quick:
        from bench.report import print_table

        print_table(run(True))
        return
    runs = []
    if args.baseline_ref:
        folder = worktree(args.baseline_ref)
        try:
            runs.append(measure(args.baseline_ref[:12], folder, args.seconds, args.clients))
        finally:
            remove_worktree(folder)
    runs.append(measure("this checkout", ROOT, args.seconds, args.clients))
    report(runs)


if __name__ == "__main__":
    main()
