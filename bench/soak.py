"""Soak: a mixed load at half of the measured peak for a long time; nothing may drift or go missing.

Method: a fresh embedded deployment (SQLite) served by ``gateway serve --workers 2
--delivery-workers 1`` in demo mode.  First the peak is measured: submissions per second with
``--clients`` unpaced clients for a few seconds.  Then, for ``--seconds``, the same clients run a
paced mix at half that rate: submissions (the departments), inbox pulls and acknowledgements by
both recipients (the deliveries), status replies, citizens filing dossiers and auditors searching
the log and reading statistics.  Every 10 s the server processes' memory (RSS) and open files are
sampled with the window's p99 latency and its non-2xx answers.

At the end every recipient's inbox is drained, and the run checks: memory and open files flat
(last window within ``--memory-slack`` and a few files of the first steady one), p99 not drifting
(last window at most ``--latency-slack`` times the first), no unexpected answer, every document
a client was told was accepted stored once and acknowledged by both its recipients, and the
audit log exported and verified offline.  Exit status 0 only when all hold.

    .venv/bin/python bench/soak.py --seconds 600          # the documented 10-minute run
    .venv/bin/python bench/soak.py --seconds 60 --json    # what the suite runs
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

if __package__ in (None, ""):  # run as `python bench/soak.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deployment import ROOT, DemoDeployment

SAMPLE = ROOT / "examples" / "cong-van.edxml"
STATUS = ROOT / "examples" / "status-03.edxml"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HCM, Q4, NOIVU = "000.00.00.H29", "000.00.04.H29", "000.00.31.H29"
WINDOW = 10.0


@dataclass
class Window:
    at: float
    requests: int
    unexpected: int
    p99_ms: float
    rss_mb: float
    open_files: int


@dataclass
class Report:
    peak_per_second: float
    target_per_second: float
    seconds: float
    windows: list[Window] = field(default_factory=list)
    accepted: int = 0
    stored: int = 0
    acknowledged: int = 0
    unexpected: list[str] = field(default_factory=list)
    audit_verified: bool = False
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


class Gateway(DemoDeployment):
    """The deployment soaked, with its auditor and limits raised out of the way, and its process tree."""

    def __init__(self) -> None:
        super().__init__(
            settings={
                "GATEWAY_AUDITORS": NOIVU,
                "GATEWAY_ACCESS_TOKEN_TTL": "3600",
                # The soak measures the gateway, not its rate limits.
                "GATEWAY_AGENCY_SUBMISSIONS_PER_MINUTE": str(10**9),
                "GATEWAY_CITIZEN_DOSSIERS_PER_HOUR": str(10**9),
                "GATEWAY_LOGINS_PER_MINUTE": str(10**9),  # every citizen call counts as a login per address
                "GATEWAY_TOKEN_REQUESTS_PER_MINUTE": str(10**9),
            }
        )

    def processes(self) -> list[int]:
        """The serve process and all its descendants (gunicorn master, workers, delivery worker)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.server.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def resources(self) -> tuple[float, int]:
        rss, files = 0.0, 0
        for pid in self.processes():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rss += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024
                files += len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, StopIteration):
                continue
        return rss, files


class Actors:
    """Agencies, a citizen and an auditor, with tokens and pre-signed documents."""

    def __init__(self, gw: Gateway, documents: int) -> None:
        import jwt

        from gateway.documents.signing import sign_edxml
        from gateway.trust import pki

        self.gw = gw
        keys = gw.home / "keys" / "agencies"
        self._jwt, self._pki = jwt, pki
        self.tokens = {code: self._token(keys / code / "client.key", code) for code in (HCM, Q4, NOIVU)}
        signing = pki.load_private_key(keys / HCM / "signing.key"), pki.load_certificates(keys / HCM / "signing.crt")
        q4 = pki.load_private_key(keys / Q4 / "signing.key"), pki.load_certificates(keys / Q4 / "signing.crt")
        unsigned = SAMPLE.read_bytes()
        print(f"signing {documents} distinct documents before the run …", flush=True)
        self.documents = [
            sign_edxml(unsigned.replace(b"1024/UBND-VX<", f"{n}/UBND-VX<".encode()), *signing) for n in range(documents)
        ]
        status = STATUS.read_bytes()
        # Status n answers document n: statuses go at a tenth of the submissions' pace, so it exists by then.
        self.statuses = [
            sign_edxml(status.replace(b",1024/UBND-VX<", f",{n}/UBND-VX<".encode()), *q4)
            for n in range(max(50, documents // 10))
        ]
        self.citizen = self._citizen()
        self.lock = threading.Lock()
        self.next_document = 0
        self.next_status = 0

    def _token(self, key_path: Path, code: str) -> str:
        now = int(time.time())
        assertion = self._jwt.encode(
            {
                "iss": code,
                "sub": code,
                "aud": self.gw.base + "/oauth/token",
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            self._pki.load_private_key(key_path),
            algorithm="ES256",
        )
        answer = requests.post(
            self.gw.base + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            timeout=10,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def _citizen(self) -> str:
        import base64
        import hashlib
        import secrets

        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": "citizen-app",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        answer = requests.post(
            self.gw.base + "/dev-idp/authorize",
            data={**params, "citizen": "0", "level": "2"},
            allow_redirects=False,
            timeout=10,
        )
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        tokens = requests.post(
            self.gw.base + "/dev-idp/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": params["redirect_uri"],
                "client_id": "citizen-app",
                "code_verifier": verifier,
            },
            timeout=10,
        ).json()
        return str(tokens["access_token"])

    def take_document(self) -> bytes | None:
        with self.lock:
            if self.next_document >= len(self.documents):
                return None
            self.next_document += 1
            return self.documents[self.next_document - 1]

    def take_status(self) -> bytes | None:
        with self.lock:
            if self.next_status >= len(self.statuses):
                return None
            self.next_status += 1
            return self.statuses[self.next_status - 1]


class Load:
    """Clients running a paced mix; every answer's latency and every unexpected status are kept."""

    MIX = ("submit",) * 10 + ("pull-q4",) * 3 + ("pull-noivu",) * 3 + ("status", "dossier", "auditor", "auditor")

    def __init__(self, actors: Actors, clients: int) -> None:
        self.actors, self.clients = actors, clients
        self.lock = threading.Lock()
        self.samples: list[tuple[float, float]] = []  # (when, seconds)
        self.unexpected: list[str] = []
        self.accepted: set[str] = set()
        self.acknowledged: dict[str, set[str]] = {Q4: set(), NOIVU: set()}
        self.stop = threading.Event()

    def _call(
        self, session: requests.Session, method: str, path: str, ok: tuple[int, ...], **kwargs: Any
    ) -> requests.Response | None:
        started = time.perf_counter()
        try:
            answer = session.request(method, self.actors.gw.base + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.unexpected.append(f"{method} {path}: {type(exc).__name__}")
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.samples.append((time.monotonic(), elapsed))
            if answer.status_code not in ok:
                self.unexpected.append(f"{method} {path}: {answer.status_code} {answer.text[:160]}")
        return answer

    def one(self, session: requests.Session, what: str) -> None:
        tokens = self.actors.tokens
        if what == "submit":
            body = self.actors.take_document()
            if body is None:
                return
            answer = self._call(
                session,
                "POST",
                "/v1/documents",
                (202,),
                data=body,
                headers={"Authorization": f"Bearer {tokens[HCM]}", "Content-Type": "application/xml"},
            )
            if answer is not None and answer.status_code == 202:
                with self.lock:
                    self.accepted.add(answer.json()["id"])
        elif what.startswith("pull-"):
            self.pull(session, Q4 if what == "pull-q4" else NOIVU)
        elif what == "status":
            body = self.actors.take_status()
            if body is not None:
                self._call(
                    session,
                    "POST",
                    "/v1/status",
                    (202,),
                    data=body,
                    headers={"Authorization": f"Bearer {tokens[Q4]}", "Content-Type": "application/xml"},
                )
        elif what == "dossier":
            self._call(
                session,
                "POST",
                "/v1/dossiers",
                (202,),
                json={"procedure": "1.000494", "fields": {"ly_do": "Soak"}},
                headers={"Authorization": f"Bearer {self.actors.citizen}"},
            )
        elif what == "auditor":
            auth = {"Authorization": f"Bearer {tokens[NOIVU]}"}
            self._call(session, "GET", "/v1/audit/entries?limit=50&event=document.accepted", (200,), headers=auth)
            self._call(session, "GET", "/v1/audit/statistics", (200,), headers=auth)

    def pull(self, session: requests.Session, code: str) -> int:
        auth = {"Authorization": f"Bearer {self.actors.tokens[code]}"}
        answer = self._call(session, "GET", "/v1/inbox?limit=20", (200,), headers=auth)
        items = answer.json()["items"] if answer is not None and answer.status_code == 200 else []
        for item in items:
            if item.get("kind") != "document":
                self._call(session, "POST", f"/v1/inbox/{item['id']}/ack", (200,), headers=auth)
                continue
            content = self._call(session, "GET", f"/v1/documents/{item['id']}/content", (200,), headers=auth)
            if content is not None and content.status_code == 200:
                acked = self._call(session, "POST", f"/v1/inbox/{item['id']}/ack", (200,), headers=auth)
                if acked is not None and acked.status_code == 200:
                    with self.lock:
                        self.acknowledged[code].add(item["id"])
        return len(items)

    def run(self, per_second: float, seconds: float, unpaced: Callable[[], str] | None = None) -> None:
        """``clients`` threads; paced to ``per_second`` operations in all (unpaced when ``unpaced`` picks them)."""
        interval = self.clients / per_second if per_second > 0 else 0.0
        end = time.monotonic() + seconds

        def client(n: int) -> None:
            session = requests.Session()
            i, due = n, time.monotonic() + n * interval / self.clients
            while time.monotonic() < end and not self.stop.is_set():
                what = unpaced() if unpaced else self.MIX[i % len(self.MIX)]
                self.one(session, what)
                i += self.clients
                if not unpaced:
                    due += interval
                    time.sleep(max(0.0, due - time.monotonic()))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0


def soak(seconds: float, clients: int = 4, memory_slack: float = 0.25, latency_slack: float = 3.0) -> Report:
    gw = Gateway()
    try:
        peak_seconds = 5.0
        actors = Actors(gw, documents=int(seconds * 40) + 600)
        probe = Load(actors, clients)
        print(f"measuring the peak: unpaced submissions for {peak_seconds:.0f} s with {clients} clients …", flush=True)
        probe.run(0, peak_seconds, unpaced=lambda: "submit")
        peak = len(probe.accepted) / peak_seconds
        target = peak / 2
        report = Report(peak, target, seconds)
        load = Load(actors, clients)
        load.accepted |= probe.accepted
        print(f"peak {peak:.1f} submissions/s; soaking at {target:.1f} operations/s for {seconds:.0f} s …", flush=True)
        runner = threading.Thread(target=load.run, args=(target, seconds), daemon=True)
        started = time.monotonic()
        runner.start()
        while runner.is_alive():
            runner.join(timeout=WINDOW)
            now = time.monotonic()
            if report.windows and now - started - report.windows[-1].at < WINDOW / 2:
                continue  # the run ended just after a window: no second, partial one
            with load.lock:
                recent = [s for t, s in load.samples if t >= now - WINDOW]
                unexpected = len(load.unexpected)
            rss, files = gw.resources()
            window = Window(round(now - started), len(recent), unexpected, round(_p99(recent), 1), round(rss, 1), files)
            report.windows.append(window)
            print(
                f"  {window.at:5.0f} s  {window.requests:5d} requests  p99 {window.p99_ms:7.1f} ms  "
                f"RSS {window.rss_mb:7.1f} MB  open files {window.open_files:4d}  unexpected {window.unexpected}",
                flush=True,
            )
        print("draining both inboxes …", flush=True)
        session = requests.Session()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (load.pull(session, Q4) + load.pull(session, NOIVU)):
            pass
        report.unexpected = load.unexpected[:20]
        report.accepted = len(load.accepted)
        acknowledged_by_both = load.acknowledged[Q4] & load.acknowledged[NOIVU]
        report.acknowledged = len(acknowledged_by_both & load.accepted)
        time.sleep(2)  # the last checkpoint
        with sqlite3.connect(gw.database) as db:
            stored = {r[0] for r in db.execute("SELECT id FROM documents WHERE kind = 'document'")}
            size = db.execute("SELECT size FROM audit_head").fetchone()[0]
        report.stored = len(stored & load.accepted)
        bundle = gw.home / "audit.zip"
        exported = gw.cli("audit", "export", "--from", "0", "--to", str(size), "--out", str(bundle))
        vkey = gw.cli("audit", "vkey").stdout.strip()
        verdict = gw.cli("audit", "verify", str(bundle), "--vkey", vkey)
        report.audit_verified = exported.returncode == 0 and verdict.stdout.startswith("VALID")
        steady = report.windows[1] if len(report.windows) > 2 else report.windows[0]
        last = report.windows[-1]
        report.checks = {
            "no unexpected answers": not load.unexpected,
            "memory flat": last.rss_mb <= steady.rss_mb * (1 + memory_slack),
            "open files flat": last.open_files <= steady.open_files + 8,
            "latency not drifting": last.p99_ms <= max(steady.p99_ms * latency_slack, steady.p99_ms + 50),
            "every accepted document stored": report.stored == report.accepted and report.accepted > 0,
            "every document acknowledged by both recipients": report.acknowledged == report.accepted,
            "audit log verifies": report.audit_verified,
        }
        return report
    finally:
        gw.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args()
    report = soak(args.seconds, args.clients)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=1))
    else:
        first, last = report.windows[0], report.windows[-1]
        print()
        print(f"peak {report.peak_per_second:.1f} submissions/s, soak at {report.target_per_second:.1f} operations/s")
        print(f"start: RSS {first.rss_mb} MB, {first.open_files} files, p99 {first.p99_ms} ms")
        print(f"end:   RSS {last.rss_mb} MB, {last.open_files} files, p99 {last.p99_ms} ms")
        print(
            f"documents: {report.accepted} accepted, {report.stored} stored, {report.acknowledged} acknowledged by both"
        )
        for name, passed in report.checks.items():
            print(f"  {'ok  ' if passed else 'FAIL'} {name}")
        for line in report.unexpected:
            print(f"  unexpected: {line}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
