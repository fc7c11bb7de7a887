"""``/healthz`` latency while slow clients trickle request headers (issue 10, finding 1), before and after.

Method: a fresh embedded deployment served by ``gateway serve --workers 2``.  ``--connections``
attacker connections each send a request line and then one header line every ``--interval``
seconds, never finishing; one the server closes is opened again at once (as an attacker would).
Meanwhile a probe opens a new connection and asks ``GET /healthz`` ``--probes-per-second`` times a
second, as a load balancer's health check does.  A probe with no answer within ``--probe-timeout``
seconds is an error and counts at that latency.  The baseline in the same run is the same server
with no attack.  With ``--baseline-ref REV`` the whole measurement first runs on a git worktree of
REV, so the table shows the server before and after a change on the same machine.

    .venv/bin/python bench/slowloris.py [--seconds 20] [--connections 16] [--baseline-ref 59e56ab]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/slowloris.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deployment import ROOT, DemoDeployment, remove_worktree, worktree


@dataclass
class Probe:
    timings: list[float]
    errors: int
    attacker_connections: int = 0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.timings)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def probe_healthz(port: int, seconds: float, per_second: float = 20, timeout: float = 2.0) -> Probe:
    """New-connection ``GET /healthz`` probes for ``seconds``; latency in seconds, errors counted at ``timeout``."""
    timings: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                raise OSError(answer[:40])
            timings.append(time.perf_counter() - started)
        except OSError:
            errors += 1
            timings.append(max(timeout, time.perf_counter() - started))
        time.sleep(max(0.0, 1 / per_second - (time.perf_counter() - started)))
    return Probe(timings, errors)


class Slowloris:
    """``connections`` clients that trickle one header line every ``interval`` seconds, reconnecting when closed."""

    def __init__(self, port: int, connections: int, interval: float) -> None:
        self.port, self.connections, self.interval = port, connections, interval
        self.stop = threading.Event()
        self.opened = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=10)

    def _open(self) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
            self.opened += 1
            return s
        except OSError:
            return None

    def _run(self) -> None:
        held: list[socket.socket | None] = [self._open() for _ in range(self.connections)]
        while not self.stop.wait(self.interval):
            for i, s in enumerate(held):
                try:
                    if s is None:
                        raise OSError
                    s.sendall(b"X-Trickle: 1\r\n")
                except OSError:
                    if s is not None:
                        s.close()
                    held[i] = self._open()
        for s in held:
            if s is not None:
                s.close()


def under_attack(port: int, seconds: float, connections: int, interval: float) -> Probe:
    with Slowloris(port, connections, interval) as attack:
        probe = probe_healthz(port, seconds)
    probe.attacker_connections = attack.opened
    return probe


@dataclass
class Run:
    label: str
    quiet: Probe
    attacked: Probe


def measure(label: str, code: Path, seconds: float, connections: int, interval: float) -> Run:
    deployment = DemoDeployment(code)
    try:
        print(f"[{label}] /healthz quiet for {seconds / 2:.0f}s …", flush=True)
        quiet = probe_healthz(deployment.port, seconds / 2)
        print(f"[{label}] /healthz for {seconds:.0f}s while {connections} connections trickle headers …", flush=True)
        attacked = under_attack(deployment.port, seconds, connections, interval)
    finally:
        deployment.stop()
    return Run(label, quiet, attacked)


def report(runs: list[Run], connections: int, interval: float) -> None:
    print()
    print(f"gateway serve --workers 2; {connections} slow connections, one header line every {interval:g} s")
    row = "{:<24} {:>14} {:>14} {:>14} {:>10} {:>10} {:>12}"
    print(row.format("code", "quiet p99 ms", "attack p50 ms", "attack p99 ms", "probes", "errors", "p99 ratio"))
    for r in runs:
        ratio = r.attacked.percentile(0.99) / r.quiet.percentile(0.99)
        print(
            row.format(
                r.label,
                f"{r.quiet.percentile(0.99) * 1000:.1f}",
                f"{r.attacked.percentile(0.5) * 1000:.1f}",
                f"{r.attacked.percentile(0.99) * 1000:.1f}",
                len(r.attacked.timings),
                r.attacked.errors + r.quiet.errors,
                f"{ratio:.2f}",
            )
        )
    print("p99 ratio: /healthz p99 under attack over p99 without it, in the same run (1.00: no effect)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--baseline-ref", help="Also measure this git revision first, in the same run.")
    args = parser.parse_args()
    runs = []
    if args.baseline_ref:
        folder = worktree(args.baseline_ref)
        try:
            runs.append(measure(f"before ({args.baseline_ref})", folder, args.seconds, args.connections, args.interval))
        finally:
            remove_worktree(folder)
    runs.append(measure("after (this checkout)", ROOT, args.seconds, args.connections, args.interval))
    report(runs, args.connections, args.interval)


if __name__ == "__main__":
    main()
