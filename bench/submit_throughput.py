"""Documents accepted per second through POST /v1/documents under gunicorn, against baselines of the same run.

Method: a fresh embedded deployment (SQLite, WAL) with the demo agencies is served by
``gateway serve --workers 2``.  Before timing, the client signs N distinct copies of the 6 KB
``cong-van.edxml`` sample (RSA-2048, rsa-sha256) so signing cost is not measured.  C client
processes with keep-alive connections then POST them for a fixed time.  In the same run and with
the same clients, the server's trivial ``/healthz`` endpoint is measured: the printed ratio says
what fraction of the server's bare request capacity a verified, sealed, audited submission costs.
A second baseline is the in-process cost of our signature verification alone (one core).

The client processes share the machine's cores with the server, so absolute figures are a floor.

    .venv/bin/python bench/submit_throughput.py [--seconds 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "cong-van.edxml"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway on port {port} did not become ready in {seconds:.0f} s")


def hammer(port: int, path: str, bodies: list[bytes], token: str, seconds: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    done, bad, latencies = 0, 0, []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        body = bodies[i % len(bodies)] if bodies else None
        i += 1
        start = time.perf_counter()
        conn.request("POST" if body else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status in (200, 202):
            done += 1
        else:
            bad += 1
    queue.put((done, bad, latencies))


def run_load(port: int, path: str, per_client: list[list[bytes]], token: str, seconds: float) -> dict[str, float]:
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=hammer, args=(port, path, bodies, token, seconds, queue)) for bodies in per_client]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"per_second": done / seconds, "errors": bad, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import jwt

    from gateway.documents import edxml, xmlsafe
    from gateway.documents.signing import sign_edxml
    from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
    from gateway.trust import pki
    from gateway.trust.chain import TrustStore

    home = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite:///{home / 'gw.db'}",
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*cli, "init", "--demo"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        keys = home / "keys" / "agencies" / "000.00.00.H29"
        signing_key = pki.load_private_key(keys / "signing.key")
        chain = pki.load_certificates(keys / "signing.crt")
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": "000.00.00.H29",
                "sub": "000.00.00.H29",
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
        token = json.loads(c.getresponse().read())["access_token"]

        unsigned = SAMPLE.read_bytes()
        estimated = int(args.seconds * 400) + 200
        print(f"signing {estimated} distinct documents before timing …", flush=True)
        bodies = []
        for n in range(estimated):
            data = unsigned.replace(b"1024/UBND-VX</edXML:DocumentId>", f"{n}/UBND-VX</edXML:DocumentId>".encode())
            bodies.append(sign_edxml(data, signing_key, chain))
            if n % 500 == 0:
                print(f"  {n}/{estimated}", flush=True)
        size = len(bodies[0])

        # Baseline 1: in-process verification only, one core.
        verifier = EnvelopedSignatureVerifier(
            TrustStore(pki.load_certificates(home / "keys" / "ca.crt")),
            SignatureProfile(),
            f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}",
        )
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < 3:
            verifier.verify(bodies[count], xmlsafe.parse(bodies[count]), chain)
            count += 1
        verify_rate = count / (time.perf_counter() - start)

        print(f"measuring GET /healthz for {args.seconds:.0f}s with {args.clients} clients …", flush=True)
        trivial = run_load(port, "/healthz", [[] for _ in range(args.clients)], token, args.seconds)
        print(f"measuring POST /v1/documents for {args.seconds:.0f}s with {args.clients} clients …", flush=True)
        shards = [bodies[i :: args.clients] for i in range(args.clients)]
        submit = run_load(port, "/v1/documents", shards, token, args.seconds)
        if submit["per_second"] * args.seconds >= len(bodies) * 0.95:
            print("warning: clients ran out of distinct documents; later posts were duplicates", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print()
    print(f"document size                          {size} bytes, RSA-2048 rsa-sha256, SQLite WAL, gunicorn 2 workers")
    print(f"signature verification, in process     {verify_rate:8.0f} /s on one core")
    row = "{:<38} {:8.0f} /s   p50 {:.1f} ms  p99 {:.1f} ms"
    t, d = trivial, submit
    print(row.format("GET /healthz (baseline, same server)", t["per_second"], t["p50_ms"], t["p99_ms"]))
    print(
        row.format("POST /v1/documents accepted", d["per_second"], d["p50_ms"], d["p99_ms"])
        + f"  errors {d['errors']:.0f}"
    )
    print(f"ratio submissions / trivial requests   {submit['per_second'] / trivial['per_second']:8.3f}")
    print(f"ratio submissions / in-process verify  {submit['per_second'] / verify_rate:8.3f}")


if __name__ == "__main__":
    main()
