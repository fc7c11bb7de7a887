"""Witnesses on against off (issue 13): documents accepted a second; how long a checkpoint waits for cosignatures.

Method: two fresh embedded deployments (SQLite, ``gateway serve --workers 2``, its checkpoint
signer) measured one after the other with the same clients and documents as the ``submission``
benchmark: first with no witnesses, then with two real ``gateway witness serve`` processes on this
machine listed in ``GATEWAY_WITNESSES``.  The figure is the second's accepted documents per second
against the first's.

With the witnesses running and the gateway idle, one audit entry at a time is added (a token
request) and ``GET /v1/audit/checkpoint`` is polled every 5 ms: the time from the first checkpoint
covering the entry to the first answer carrying both witnesses' cosignature lines is the
checkpoint-to-cosigned latency (median and max of the samples).  Its baseline is the time from the
entry to that signed checkpoint, in the same samples; the bound it is held to is one second, what
the README promises.  Non-2xx answers are errors.

    .venv/bin/python bench/witnessed_log.py [--quick]
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deployment import ROOT, DemoDeployment, free_port, wait_ready
from bench.measure import Figure
from bench.report import standalone
from bench.submit_throughput import _token, measure

NAME = "witnesses"
DASH = "\u2014 "


class Witnesses:
    """Two witnesses: keys made first (the gateway must list them), served once the log's key is known."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gateway-bench-witnesses-"))
        self.members: list[tuple[str, str, int]] = []  # (name, vkey, port)
        self.processes: list[subprocess.Popen[bytes]] = []
        for n in (1, 2):
            name, key = f"bench.example/w{n}", self.folder / f"w{n}.key"
            made = _gateway("witness", "init", "--name", name, "--key", str(key))
            vkey = made.stdout.split("vkey ", 1)[1].strip()
            self.members.append((name, vkey, free_port()))

    @property
    def setting(self) -> str:
        return ",".join(f"{vkey} http://127.0.0.1:{port}" for _name, vkey, port in self.members)

    def start(self, deployment: DemoDeployment) -> None:
        log_vkey = deployment.cli("audit", "vkey", check=True).stdout.strip()
        for n, (name, _vkey, port) in enumerate(self.members, 1):
            args = ["witness", "serve", "--name", name, "--key", str(self.folder / f"w{n}.key")]
            args += ["--state", str(self.folder / f"w{n}.db"), "--log", log_vkey, "--port", str(port)]
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        for _name, _vkey, port in self.members:
            wait_ready(port, 30, path="/healthz")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, check=True)


def _checkpoint(port: int) -> tuple[int, int]:
    """(size, cosignature lines) of the gateway's latest checkpoint note."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/v1/audit/checkpoint")
    response = c.getresponse()
    text = response.read().decode()
    if response.status != 200:
        raise RuntimeError(f"GET /v1/audit/checkpoint answered {response.status}")
    lines = text.split("\n")
    signatures = [line for line in lines[lines.index("") + 1 :] if line.startswith(DASH)]
    return int(lines[1]), len(signatures) - 1  # the log's own signature is one of them


def cosigning_latency(deployment: DemoDeployment, samples: int) -> dict[str, float]:
    keys = deployment.home / "keys" / "agencies" / "000.00.00.H29"
    signed_after, cosigned_after, errors = [], [], 0
    for _ in range(samples):
        size, _ = _checkpoint(deployment.port)
        began = time.perf_counter()
        try:
            _token(deployment.port, keys)  # one audit entry (auth.token.issued)
        except (KeyError, ValueError):
            errors += 1
            continue
        signed_at = None
        deadline = began + 10
        while time.perf_counter() < deadline:
            latest, cosigned = _checkpoint(deployment.port)
            now = time.perf_counter()
            if latest > size and signed_at is None:
                signed_at = now
            if latest > size and cosigned >= 2:
                assert signed_at is not None
                signed_after.append(signed_at - began)
                cosigned_after.append(now - signed_at)
                break
            time.sleep(0.005)
        else:
            errors += 1
        time.sleep(0.3)
    if not cosigned_after:
        return {"errors": float(errors), "p50_ms": float("nan"), "max_ms": float("nan"), "signed_p50_ms": 1.0}
    return {
        "errors": float(errors),
        "p50_ms": statistics.median(cosigned_after) * 1000,
        "max_ms": max(cosigned_after) * 1000,
        "signed_p50_ms": statistics.median(signed_after) * 1000,
        "samples": float(len(cosigned_after)),
    }


def figures(*, seconds: float = 10.0, clients: int = 4, samples: int = 20) -> list[Figure]:
    off = measure("no witnesses", ROOT, seconds, clients)
    witnesses = Witnesses()
    latency: dict[str, float] = {}

    def ready(deployment: DemoDeployment) -> None:
        witnesses.start(deployment)
        latency.update(cosigning_latency(deployment, samples))

    try:
        on = measure("two witnesses", ROOT, seconds, clients, {"GATEWAY_WITNESSES": witnesses.setting}, ready)
    finally:
        witnesses.stop()
    method = (
        f"gunicorn 2 workers and the checkpoint signer, SQLite, {clients} client processes, {seconds:g} s; two "
        "`gateway witness serve` processes on the same machine"
    )
    common = {"benchmark": NAME, "method": method}
    return [
        Figure(
            name="accepted documents, two witnesses",
            value=on.submit["per_second"],
            unit="/s",
            baseline="accepted documents, no witnesses (same run)",
            baseline_value=off.submit["per_second"],
            target=0.9,
            errors=int(on.submit["errors"] + off.submit["errors"]),
            notes={
                "p50 ms on / off": f"{on.submit['p50_ms']:.1f} / {off.submit['p50_ms']:.1f}",
                "GET /healthz/s on / off": f"{on.trivial['per_second']:.0f} / {off.trivial['per_second']:.0f}",
            },
            **common,
        ),
        Figure(
            name="checkpoint to cosigned by both witnesses, median",
            value=latency.get("p50_ms", float("nan")),
            unit="ms",
            baseline="the README's bound (within about a second)",
            baseline_value=1000.0,
            target=1.0,
            higher_is_better=False,
            errors=int(latency.get("errors", 0)),
            notes={
                "max ms": f"{latency.get('max_ms', float('nan')):.0f}",
                "entry to signed checkpoint, median ms": f"{latency.get('signed_p50_ms', float('nan')):.0f}",
                "samples": f"{latency.get('samples', 0):.0f} (idle gateway, polled every 5 ms)",
            },
            **common,
        ),
    ]


def run(quick: bool) -> list[Figure]:
    return figures(seconds=1.0, clients=2, samples=2) if quick else figures()


if __name__ == "__main__":
    standalone(__doc__, run)
