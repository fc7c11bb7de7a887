"""End-to-end documents per second (submit → delivered) and the latency delivery adds, per adapter.

Method: for each deployment — *embedded* (SQLite, no Redis, one ``gateway serve`` with 2 workers,
one delivery worker) and *scale-out* (a fresh PostgreSQL database, Redis, two ``gateway serve``
processes, two delivery workers) — and each adapter:

* ``inbox``: the recipient (District 4) polls its inbox, downloads each document and acknowledges
  it; "delivered" is the acknowledgement.
* ``http``: District 4 is switched to push; a receiver in this process verifies the gateway's
  token and answers with a signed receipt; "delivered" is the receiver having the document.

C client processes submit N pre-signed documents as fast as the server takes them.  Throughput is
N / (last delivery − first submission); added latency is delivery time − submission start per
document (p50, p99).  In the same run, with the same clients, the same servers' trivial
``/healthz`` rate is measured: the ratio says what an end-to-end delivery costs against a bare
request.  Everything shares the machine's cores, so absolute figures are a floor.

    .venv/bin/python bench/delivery_throughput.py [--documents 600] [--clients 4] [--only embedded]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.deployment import free_port, wait_ready  # noqa: E402
from bench.measure import Figure  # noqa: E402
from bench.submit_throughput import ASSERTION_TYPE, SAMPLE, run_load  # noqa: E402

HCM, Q4 = "000.00.00.H29", "000.00.04.H29"
CLI = [sys.executable, "-m", "gateway.cli"]
POSTGRES = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def token_for(base: str, keys: Path, code: str) -> str:
    import jwt

    from gateway.trust import pki

    now = int(time.time())
    claims = {
        "iss": code,
        "sub": code,
        "aud": base + "/oauth/token",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode(claims, pki.load_private_key(keys / "agencies" / code / "client.key"), algorithm="ES256")
    host, port = base.removeprefix("http://").split(":")
    c = http.client.HTTPConnection(host, int(port))
    form = f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
    c.request("POST", "/oauth/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    return str(json.loads(c.getresponse().read())["access_token"])


def submit_all(port: int, bodies: list[bytes], token: str, interval: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    """POST every body; with ``interval`` > 0, one every ``interval`` seconds (an open-loop pace)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started: dict[str, float] = {}
    errors, begin = 0, time.time()
    for n, body in enumerate(bodies):
        if interval:
            time.sleep(max(0.0, begin + n * interval - time.time()))
        start = time.time()
        conn.request("POST", "/v1/documents", body=body, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        answer = response.read()
        if response.status == 202:
            started[json.loads(answer)["id"]] = start
        else:
            errors += 1
    queue.put(("started", {"times": started, "errors": errors, "end": time.time()}))


def pull_inbox(port: int, token: str, expected: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    done: dict[str, float] = {}
    deadline = time.time() + 600
    while len(done) < expected and time.time() < deadline:
        conn.request("GET", "/v1/inbox?limit=100", headers=headers)
        items = json.loads(conn.getresponse().read())["items"]
        for item in items:
            conn.request("GET", item["links"]["content"], headers=headers)
            conn.getresponse().read()
            conn.request("POST", item["links"]["ack"], headers=headers)
            conn.getresponse().read()
            done[item["id"]] = time.time()
        if not items:
            time.sleep(0.05)
    queue.put(("delivered", done))


class Deployment:
    def __init__(self, kind: str, home: Path) -> None:
        self.kind, self.home = kind, home
        self.ports = [free_port()] if kind == "embedded" else [free_port(), free_port()]
        self.env = {
            **os.environ,
            "GATEWAY_KEYS_DIR": str(home / "keys"),
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{self.ports[0]}",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_AGENCY_SUBMISSIONS_PER_MINUTE": "1000000",
        }
        self.env.pop("GATEWAY_REDIS_URL", None)
        self.database = None
        if kind == "embedded":
            self.env["GATEWAY_DATABASE_URL"] = f"sqlite:///{home / 'gw.db'}"
        else:
            import sqlalchemy as sa

            self.database = f"gateway_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {self.database}"))
            admin.dispose()
            self.env["GATEWAY_DATABASE_URL"] = POSTGRES.rsplit("/", 1)[0] + "/" + self.database
            self.env["GATEWAY_REDIS_URL"] = "redis://127.0.0.1:6379/14"
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self) -> None:
        subprocess.run([*CLI, "init", "--demo"], env=self.env, check=True, capture_output=True, cwd=self.home)
        workers = "2" if self.kind == "embedded" else "1"
        for port in self.ports:
            self.processes.append(
                subprocess.Popen(
                    [*CLI, "serve", "--port", str(port), "--workers", workers, "--delivery-workers", "0"],
                    env=self.env,
                    cwd=self.home,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for _ in range(len(self.ports) if self.kind == "embedded" else 2):
            self.processes.append(
                subprocess.Popen(
                    [*CLI, "worker", "--idle", "0.2"],
                    env=self.env,
                    cwd=self.home,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            wait_ready(port)

    def gateway(self, *args: str) -> None:
        subprocess.run([*CLI, *args], env=self.env, check=True, capture_output=True, cwd=self.home)

    def stop(self) -> None:
        for p in self.processes:
            p.send_signal(signal.SIGTERM)
        for p in self.processes:
            p.wait(timeout=30)
        if self.database:
            import sqlalchemy as sa

            admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"))
            admin.dispose()


def measure(deployment: Deployment, adapter: str, documents: int, clients: int, rate: float = 0) -> dict[str, Any]:
    """Saturated when ``rate`` is 0; else submissions paced at ``rate`` per second in all."""
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki
    from tests.receiver import Receiver

    keys = deployment.home / "keys"
    folder = keys / "agencies" / HCM
    key, chain = pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
    unsigned, tag = SAMPLE.read_bytes(), uuid.uuid4().hex[:6]
    bodies = [
        sign_edxml(unsigned.replace(b"1024/UBND-VX<", f"{tag}{n}/UBND-VX<".encode()), key, chain)
        for n in range(documents)
    ]
    receiver = None
    if adapter == "http":
        receiver = Receiver(
            Q4,
            pki.load_private_key(keys / "agencies" / Q4 / "client.key"),
            pki.load_private_key(keys / "gateway-token.key").public_key(),
        )  # type: ignore[arg-type]
        arrivals: dict[str, float] = {}
        original = receiver.documents

        class Timed(dict):  # type: ignore[type-arg]
            def setdefault(self, k: str, v: Any) -> Any:
                arrivals.setdefault(k, time.time())
                return original.setdefault(k, v)

        receiver.documents = Timed()
        receiver.start()
        deployment.gateway("agency", "set-adapter", Q4, "--adapter", "http", "--adapter-setting", f"url={receiver.url}")
    else:
        deployment.gateway("agency", "set-adapter", Q4, "--adapter", "inbox")
    bases = deployment.bases
    token = token_for(bases[0], keys, HCM)
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ports = [int(b.rsplit(":", 1)[1]) for b in bases]
    submitters = [
        mp.Process(
            target=submit_all,
            args=(ports[i % len(ports)], bodies[i::clients], token, clients / rate if rate else 0, queue),
        )
        for i in range(clients)
    ]
    puller = None
    if adapter == "inbox":  # the puller stops once it has every document, or after 10 minutes
        puller = mp.Process(target=pull_inbox, args=(ports[-1], token_for(bases[0], keys, Q4), documents, queue))
        puller.start()
    for p in submitters:
        p.start()
    started: dict[str, float] = {}
    delivered: dict[str, float] = {}
    errors, submitted_by = 0, 0.0
    for _ in range(clients + (1 if puller else 0)):
        kind, found = queue.get()
        if kind == "started":
            started.update(found["times"])
            errors += found["errors"]
            submitted_by = max(submitted_by, found["end"])
        else:
            delivered.update(found)
    for p in [*submitters, *([puller] if puller else [])]:
        p.join()
    if receiver is not None:
        deadline = time.time() + 600
        while len(arrivals) < len(started) and time.time() < deadline:
            time.sleep(0.05)
        receiver.stop()
        delivered = dict(arrivals)
    latencies = sorted(delivered[d] - started[d] for d in started if d in delivered)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    first = min(started.values())
    return {
        "delivered": len(latencies),
        "per_second": len(latencies) / (max(delivered.values()) - first),
        "accepted_per_second": len(started) / (submitted_by - first),
        "errors": errors + len(started) - len(latencies),  # refused submissions, and accepted ones never delivered
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
    }


NAME = "delivery"


def figures(
    *, documents: int = 600, clients: int = 4, kinds: tuple[str, ...] = ("embedded", "scale-out")
) -> list[Figure]:
    """Delivered/s against accepted/s of the same run (target 0.8 for http, embedded)."""
    found = []
    for kind in kinds:
        deployment = Deployment(kind, Path(tempfile.mkdtemp(prefix=f"gateway-bench-{kind}-")))
        deployment.start()
        try:
            for adapter in ("inbox", "http"):
                saturated = measure(deployment, adapter, documents, clients)
                paced = measure(deployment, adapter, documents // 2, clients, saturated["per_second"] / 2)
                found.append(
                    Figure(
                        benchmark=NAME,
                        name=f"delivered through {adapter}, {kind}",
                        value=saturated["per_second"],
                        unit="/s",
                        baseline="accepted/s, same run and clients",
                        baseline_value=saturated["accepted_per_second"],
                        target=0.8 if adapter == "http" and kind == "embedded" else None,
                        errors=saturated["errors"] + paced["errors"],
                        method=f"{documents} documents from {clients} client processes as fast as taken, then "
                        f"{documents // 2} at half the delivered rate; one repetition",
                        notes={
                            "delivery latency saturated p50 / p99 ms": f"{saturated['p50_ms']:.0f} / "
                            f"{saturated['p99_ms']:.0f}",
                            "at half rate p50 / p99 ms": f"{paced['p50_ms']:.0f} / {paced['p99_ms']:.0f}",
                        },
                    )
                )
        finally:
            deployment.stop()
    return found


def run(quick: bool) -> list[Figure]:
    return figures(documents=40, clients=2, kinds=("embedded",)) if quick else figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="for the /healthz baseline")
    parser.add_argument("--only", choices=["embedded", "scale-out"])
    args = parser.parse_args()
    rows = []
    for kind in [args.only] if args.only else ["embedded", "scale-out"]:
        deployment = Deployment(kind, Path(tempfile.mkdtemp(prefix=f"gateway-bench-{kind}-")))
        print(f"{kind}: starting servers and workers …", flush=True)
        deployment.start()
        try:
            token = token_for(deployment.bases[0], deployment.home / "keys", HCM)
            port = int(deployment.bases[0].rsplit(":", 1)[1])
            print(f"{kind}: GET /healthz for {args.seconds:.0f}s …", flush=True)
            trivial = run_load(port, "/healthz", [[] for _ in range(args.clients)], token, args.seconds)
            for adapter in ("inbox", "http"):
                print(f"{kind}: {args.documents} documents through {adapter}, as fast as taken …", flush=True)
                saturated = measure(deployment, adapter, args.documents, args.clients)
                pace = saturated["per_second"] / 2
                print(f"{kind}: {args.documents // 2} documents through {adapter} at {pace:.0f}/s …", flush=True)
                paced = measure(deployment, adapter, args.documents // 2, args.clients, pace)
                rows.append((kind, adapter, saturated, paced, trivial))
        finally:
            deployment.stop()
    print()
    head = f"{'deployment':<10} {'adapter':<7} {'delivered/s':>11} {'healthz/s':>9} {'ratio':>6}"
    print(head + f"  {'saturated p50/p99 ms':>20}  {'at half rate p50/p99 ms':>23}")
    for kind, adapter, full, half, t in rows:
        print(
            f"{kind:<10} {adapter:<7} {full['per_second']:11.1f} {t['per_second']:9.0f} "
            f"{full['per_second'] / t['per_second']:6.3f}  {full['p50_ms']:9.0f} / {full['p99_ms']:<8.0f}"
            f"  {half['p50_ms']:11.0f} / {half['p99_ms']:<9.0f}"
        )


if __name__ == "__main__":
    main()
