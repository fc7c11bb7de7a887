"""Fault tests with real processes: two gateway servers and two delivery workers on PostgreSQL + Redis.

Documents go in through both servers while a worker is killed with SIGKILL and restarted, the
HTTP receiver goes away for a while, Redis is restarted — and, in the second test, PostgreSQL.
At the end every document reached every recipient, no receiver holds a second copy its adapter
should have prevented, the audit log verifies, and no 2xx was answered for anything not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from gateway.documents.signing import sign_edxml
from gateway.trust import pki
from tests.receiver import Receiver
from tests.servers import PrivatePostgres, PrivateRedis, free_port, wait_ready
from tests.support import HCM, NOIVU, Q4, sample
from tests.test_server import _token

pytestmark = pytest.mark.slow
GATEWAY = [sys.executable, "-m", "gateway.cli"]


@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    postgres: PrivatePostgres
    redis: PrivateRedis
    receiver: Receiver
    drop: Path
    servers: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)  # everything to stop at the end

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    def gateway(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*GATEWAY, *args], env=self.env, check=True, capture_output=True, text=True, cwd=self.home
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.home / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - kept open for the process
        worker = subprocess.Popen(
            [*GATEWAY, "worker", "--idle", "0.5"], env=self.env, stdout=log, stderr=log, cwd=self.home
        )
        self.workers.append(worker)
        self.spawned.append(worker)
        return worker

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.postgres.url, pool_pre_ping=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield from _start_cluster(tmp_path, postgres, redis_server, processes)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # it may never have started
            postgres.stop()
        postgres.remove()


def _start_cluster(
    tmp_path: Path, postgres: PrivatePostgres, redis_server: PrivateRedis, processes: list[subprocess.Popen[bytes]]
) -> Iterator[Cluster]:
    postgres.start()
    redis_server.start()
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": postgres.url,
        "GATEWAY_REDIS_URL": redis_server.url,
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",  # one public name, as behind a load balancer
        "GATEWAY_DEMO": "true",
        "GATEWAY_AGENCY_SUBMISSIONS_PER_MINUTE": "1000000",
        "GATEWAY_DELIVERY_LEASE_SECONDS": "3",
        "GATEWAY_DELIVERY_RECEIPT_POLL_SECONDS": "1",
        "GATEWAY_DELIVERY_BREAKER_COOLDOWN_SECONDS": "1",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    env.pop("GATEWAY_CONFIG", None)
    subprocess.run([*GATEWAY, "init", "--demo"], env=env, check=True, capture_output=True, cwd=tmp_path)
    keys = tmp_path / "keys"
    receiver = Receiver(
        Q4,
        pki.load_private_key(keys / "agencies" / Q4 / "client.key"),
        pki.load_private_key(keys / "gateway-token.key").public_key(),  # type: ignore[arg-type]
    )
    receiver.start()
    cluster = Cluster(tmp_path, env, postgres, redis_server, receiver, tmp_path / "drop", spawned=processes)
    fast_retries = ["--adapter-setting", "retry_base_seconds=1", "--adapter-setting", "retry_max_seconds=2"]
    cluster.gateway(
        "agency", "set-adapter", Q4, "--adapter", "http", "--adapter-setting", f"url={receiver.url}", *fast_retries
    )
    cluster.gateway(
        "agency",
        "set-adapter",
        NOIVU,
        "--adapter",
        "filesystem",
        "--adapter-setting",
        f"folder={cluster.drop}",
        *fast_retries,
    )
    for port in ports:
        log = open(tmp_path / f"server-{port}.log", "wb")  # noqa: SIM115 - kept open for the process
        cluster.processes.append(
            subprocess.Popen(
                [*GATEWAY, "serve", "--port", str(port), "--workers", "1", "--delivery-workers", "0"],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=log,
            )
        )
        processes.append(cluster.processes[-1])
        cluster.servers.append(f"http://127.0.0.1:{port}")
    for base in cluster.servers:
        wait_ready(base)
    cluster.start_worker(), cluster.start_worker()
    try:
        yield cluster
    finally:
        receiver.stop()


class Agency:
    """The filesystem recipient's own system: takes each dropped pair into ``done``, noting any second copy."""

    def __init__(self, drop: Path) -> None:
        self.drop, self.done = drop, drop / "done"
        self.taken: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.done.mkdir(parents=True, exist_ok=True)
        while not self.stop.wait(0.1):
            for document in self.drop.glob("*.edxml"):
                name = document.name.removesuffix(".edxml")
                self.taken[name] += 1
                (self.drop / f"{name}.seal.xml").rename(self.done / f"{name}.seal.xml")
                document.rename(self.done / document.name)


@dataclass
class Load:
    """Documents submitted from several threads across both servers, each retried until it is answered."""

    cluster: Cluster
    total: int
    answers: Counter[int] = field(default_factory=Counter)
    accepted: dict[int, str] = field(default_factory=dict)
    unanswered: int = 0  # connection errors while something was down
    failures: list[str] = field(default_factory=list)  # what no client should ever see (a 500, say)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = 4) -> list[threading.Thread]:
        folder = self.cluster.keys / "agencies" / HCM
        key, certs = pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
        base = sample("cong-van.edxml")
        token = _token(self.cluster.servers[0], self.cluster.keys, HCM)

        def submit(share: int) -> None:
            for n in range(share, self.total, threads):
                data = sign_edxml(base.replace(b"1024/UBND-VX<", f"{n}/UBND-VX<".encode()), key, certs)
                server = self.cluster.servers[n % len(self.cluster.servers)]
                while True:
                    try:
                        response = requests.post(
                            server + "/v1/documents",
                            data=data,
                            timeout=30,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
                        )
                    except requests.RequestException:
                        with self.lock:
                            self.unanswered += 1
                        time.sleep(0.2)
                        continue
                    with self.lock:
                        self.answers[response.status_code] += 1
                    if response.status_code in (200, 202):
                        with self.lock:
                            self.accepted[n] = response.json()["id"]
                        break
                    if response.status_code != 503 or response.headers["Content-Type"] != "application/problem+json":
                        with self.lock:
                            self.failures.append(f"{response.status_code}: {response.text[:300]}")
                        return
                    time.sleep(0.2)

        workers = [threading.Thread(target=submit, args=(i,), daemon=True) for i in range(threads)]
        for t in workers:
            t.start()
        return workers

    def wait_for(self, fraction: float) -> None:
        while len(self.accepted) < self.total * fraction:
            assert not self.failures, self.failures[:3]
            time.sleep(0.05)


def _wait_until_delivered(cluster: Cluster, routes_expected: int, seconds: float) -> dict[str, int]:
    engine = cluster.engine()
    deadline = time.monotonic() + seconds
    states: dict[str, int] = {}
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    states = dict(conn.execute(sa.text("SELECT state, count(*) FROM routes GROUP BY state")).all())
            except sa.exc.OperationalError:
                states = {}
            if states.get("delivered", 0) == routes_expected:
                return states
            time.sleep(0.5)
    finally:
        engine.dispose()
    return states


def _check_everything_arrived_once(cluster: Cluster, agency: Agency, ids: set[str]) -> None:
    assert set(cluster.receiver.documents) == ids  # every document reached the HTTP receiver
    for doc_id, (document, seal) in cluster.receiver.documents.items():
        assert doc_id.encode() in seal and hashlib.sha256(document).hexdigest().encode() in seal
    assert set(agency.taken) == ids and max(agency.taken.values()) == 1  # no second copy in the folder
    assert not list(cluster.drop.glob("*.edxml")) and not list(cluster.drop.glob(".*.tmp"))
    engine = cluster.engine()
    with engine.connect() as conn:
        delivered = conn.execute(
            sa.text("SELECT count(*) FROM audit_entries WHERE event = 'delivery.delivered'")
        ).scalar_one()
        size = conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
    engine.dispose()
    assert delivered == 2 * len(ids)  # each route recorded delivered exactly once
    bundle = cluster.home / "audit.zip"
    cluster.gateway("audit", "export", "--from", "0", "--to", str(size), "--out", str(bundle))
    vkey = cluster.gateway("audit", "vkey").stdout.strip()
    verdict = cluster.gateway("audit", "verify", str(bundle), "--vkey", vkey)
    assert verdict.stdout.startswith("VALID"), verdict.stdout


def _finish(cluster: Cluster, agency: Agency, load: Load, threads: list[threading.Thread]) -> None:
    """All submissions answered, then every route delivered, once, and the audit log verifies."""
    for t in threads:
        t.join(timeout=300)
    assert not load.failures, load.failures[:3]
    assert len(load.accepted) == load.total and len(set(load.accepted.values())) == load.total
    states = _wait_until_delivered(cluster, 2 * load.total, seconds=240)
    agency.stop.set()
    assert states == {"delivered": 2 * load.total}, states
    _check_everything_arrived_once(cluster, agency, set(load.accepted.values()))


def test_killed_worker_absent_receiver_and_redis_restart_lose_and_duplicate_nothing(cluster):
    agency = Agency(cluster.drop)
    agency.thread.start()
    load = Load(cluster, total=1500)
    threads = load.run()

    load.wait_for(0.2)
    cluster.workers[0].send_signal(signal.SIGKILL)  # mid-delivery: its claims come back after the lease
    cluster.workers[0].wait()
    time.sleep(0.5)
    cluster.start_worker()

    load.wait_for(0.4)
    cluster.receiver.stop()  # connections refused: retried with back-off, circuit opens
    time.sleep(3)
    cluster.receiver.start()

    load.wait_for(0.6)
    cluster.redis.stop()  # replay cache, rate limits and wake-ups go away for a moment
    time.sleep(1)
    cluster.redis.start()

    _finish(cluster, agency, load, threads)


def test_a_database_restart_mid_run_answers_503_never_2xx_for_what_was_not_stored(cluster):
    agency = Agency(cluster.drop)
    agency.thread.start()
    load = Load(cluster, total=400)
    threads = load.run()
    load.wait_for(0.3)
    cluster.postgres.stop()
    time.sleep(2)
    cluster.postgres.start()
    for t in threads:
        t.join(timeout=300)
    assert not load.failures, load.failures[:3]
    assert load.answers[503] + load.unanswered > 0  # the outage was seen by clients
    engine = cluster.engine()
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM documents WHERE kind = 'document'")).scalars())
    engine.dispose()
    assert set(load.accepted.values()) <= stored  # every 2xx names a stored document
    _finish(cluster, agency, load, threads)
