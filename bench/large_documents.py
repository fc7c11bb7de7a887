"""Peak memory of the gateway's processes while a large document is accepted and delivered, against its size.

Method: for each size, a fresh embedded deployment (``gateway serve``, 2 workers, one delivery
worker; ``GATEWAY_MAX_DOCUMENT_BYTES`` raised to 512 MB) receives one signed edXML document whose
attachment makes it that large (base64 inside, as edXML carries attachments).  District 4 first
takes it from its inbox (``GET …/content``); then District 4 is switched to the ``http`` adapter and a
second document of the same size is pushed to a receiver.  Each process's peak
resident memory (``VmHWM`` in /proc) is read at the end: the serving workers' for submission and
download, the delivery worker's for the pushes.  The bound is the issue's: 2 × the size + 150 MB.

    .venv/bin/python bench/large_documents.py [--sizes 50,200] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deployment import DemoDeployment
from bench.documents import SAMPLE, with_attachment
from bench.measure import Figure
from bench.submit_throughput import _token

NAME = "large-documents"
MB = 1024 * 1024
HCM, Q4 = "000.00.00.H29", "000.00.04.H29"


def peak_rss(pid: int) -> int:
    """Bytes: the process's high-water resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def _request(port: int, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/xml"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def measure(size: int) -> list[Figure]:
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki

    deployment = DemoDeployment(
        settings={"GATEWAY_MAX_DOCUMENT_BYTES": str(512 * MB), "GATEWAY_ACCESS_TOKEN_TTL": "3600"}
    )
    errors, notes = 0, {}
    try:
        keys = deployment.home / "keys"
        folder = keys / "agencies" / HCM
        signed = sign_edxml(
            with_attachment(SAMPLE.read_bytes(), size),
            pki.load_private_key(folder / "signing.key"),
            pki.load_certificates(folder / "signing.crt"),
        )
        port = deployment.port
        token, recipient = _token(port, folder), _token_for(deployment, Q4)
        began = time.perf_counter()
        status, answer = _request(port, "POST", "/v1/documents", token, signed)
        notes["submission s"] = f"{time.perf_counter() - began:.2f}"
        if status != 202:
            return [_failed(size, f"submission answered {status} {answer[:200]!r}")]
        doc_id = json.loads(answer)["id"]
        began = time.perf_counter()
        status, content = _request(port, "GET", f"/v1/documents/{doc_id}/content", recipient)
        notes["download s"] = f"{time.perf_counter() - began:.2f}"
        errors += status != 200 or content != signed
        del content
        pushed = _push(deployment, size)
        errors += int(pushed.pop("errors"))  # type: ignore[call-overload]
        notes.update(pushed)
        server = deployment.server.pid
        workers = [p for p in _descendants(server) if "gunicorn" in _command(p)]
        delivery = [p for p in _descendants(server) if "gateway.cli worker" in _command(p)]
        serving_peak = max(peak_rss(p) for p in workers)
        delivery_peak = max((peak_rss(p) for p in delivery), default=0)
    finally:
        deployment.stop()
    bound = 2 * len(signed) + 150 * MB
    common = {
        "benchmark": NAME,
        "unit": "MB",
        "baseline": "bound: 2 × size + 150 MB",
        "baseline_value": bound / MB,
        "target": 1.0,
        "higher_is_better": False,
        "method": "fresh deployment: one document through the inbox, a second pushed over http; peak RSS (VmHWM)",
        "errors": errors,
    }
    label = f"{len(signed) / MB:.0f} MB document"
    return [
        Figure(
            name=f"{label}: serving worker peak RSS (submit, inbox download)",
            value=serving_peak / MB,
            notes=notes,
            **common,
        ),
        Figure(name=f"{label}: delivery worker peak RSS (http push)", value=delivery_peak / MB, **common),
    ]


def _push(deployment: DemoDeployment, size: int) -> dict[str, object]:
    """A second document of the same size to District 4 switched to the ``http`` adapter; waits for the receiver."""
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki
    from tests.receiver import Receiver

    keys = deployment.home / "keys"
    folder = keys / "agencies" / HCM
    unsigned = with_attachment(SAMPLE.read_bytes(), size).replace(b"1024/UBND-VX<", b"1025/UBND-VX<")
    signed = sign_edxml(
        unsigned, pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
    )
    receiver = Receiver(
        Q4,
        pki.load_private_key(keys / "agencies" / Q4 / "client.key"),
        pki.load_private_key(keys / "gateway-token.key").public_key(),  # type: ignore[arg-type]
    )
    receiver.start()
    try:
        done = deployment.cli(
            "agency", "set-adapter", Q4, "--adapter", "http", "--adapter-setting", f"url={receiver.url}"
        )
        if done.returncode != 0:
            return {"errors": 1, "http adapter": done.stderr[-200:]}
        began = time.perf_counter()
        status, answer = _request(deployment.port, "POST", "/v1/documents", _token(deployment.port, folder), signed)
        if status != 202:
            return {"errors": 1, "http push": f"submission answered {status}"}
        doc_id = json.loads(answer)["id"]
        deadline = time.monotonic() + 600
        while doc_id not in receiver.documents and time.monotonic() < deadline:
            time.sleep(0.1)
        arrived = receiver.documents.get(doc_id)
        ok = arrived is not None and arrived[0] == signed
        return {"errors": 0 if ok else 1, "http push s": f"{time.perf_counter() - began:.2f}"}
    finally:
        receiver.stop()


def _token_for(deployment: DemoDeployment, code: str) -> str:
    return _token(deployment.port, deployment.home / "keys" / "agencies" / code, code)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _failed(size: int, why: str) -> Figure:
    return Figure(
        benchmark=NAME,
        name=f"{size / MB:.0f} MB document",
        value=float("nan"),
        unit="MB",
        baseline="bound",
        baseline_value=2 * size / MB + 150,
        target=1.0,
        higher_is_better=False,
        errors=1,
        notes={"failed": why},
    )


def figures(*, sizes: tuple[int, ...] = (50 * MB, 200 * MB)) -> list[Figure]:
    found = []
    for size in sizes:
        found += measure(size)
    return found


def run(quick: bool) -> list[Figure]:
    return figures(sizes=(12 * MB,)) if quick else figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200", help="document sizes in MB, comma-separated")
    parser.add_argument("--quick", action="store_true", help="one 12 MB document")
    args = parser.parse_args()
    from bench.report import print_table

    sizes = (12 * MB,) if args.quick else tuple(int(s) * MB for s in args.sizes.split(","))
    print_table(figures(sizes=sizes))


if __name__ == "__main__":
    main()
