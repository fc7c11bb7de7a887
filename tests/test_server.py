"""A real gunicorn server (``gateway serve``, 2 workers) on SQLite, driven over HTTP like a departmental system."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers import wait_ready
from tests.support import ASSERTION_TYPE, sample

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite:///{home / 'gw.db'}",
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_DEMO": "true",
    }
    env.pop("GATEWAY_CONFIG", None)
    gateway = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*gateway, "init", "--demo"], env=env, check=True, capture_output=True, cwd=home)
    process = subprocess.Popen(
        [*gateway, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
    except AssertionError:
        process.kill()
        pytest.fail(f"gateway serve did not become ready: {process.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
    yield base, home / "keys"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _token(base: str, keys: Path, code: str) -> str:
    assertion = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "client",
            "assertion",
            "--agency",
            code,
            "--key",
            str(keys / "agencies" / code / "client.key"),
            "--audience",
            base + "/oauth/token",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    response = requests.post(
        base + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_document_and_status_round_trip_through_gunicorn(server, tmp_path):
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki

    base, keys = server
    hcm, q4 = "000.00.00.H29", "000.00.04.H29"
    t_hcm, t_q4 = _token(base, keys, hcm), _token(base, keys, q4)

    def signed(code: str, name: str) -> bytes:
        folder = keys / "agencies" / code
        return sign_edxml(
            sample(name), pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
        )

    document = signed(hcm, "cong-van.edxml")
    accepted = requests.post(
        base + "/v1/documents",
        data=document,
        timeout=10,
        headers={"Authorization": f"Bearer {t_hcm}", "Content-Type": "application/xml"},
    )
    assert accepted.status_code == 202, accepted.text
    doc_id = accepted.json()["id"]
    auth_q4 = {"Authorization": f"Bearer {t_q4}"}
    assert [i["id"] for i in requests.get(base + "/v1/inbox", headers=auth_q4, timeout=10).json()["items"]] == [doc_id]
    assert requests.get(f"{base}/v1/documents/{doc_id}/content", headers=auth_q4, timeout=10).content == document
    seal = requests.get(f"{base}/v1/documents/{doc_id}/seal", headers=auth_q4, timeout=10).content
    (tmp_path / "d.edxml").write_bytes(document)
    (tmp_path / "d.seal").write_bytes(seal)
    verdict = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "verify",
            str(tmp_path / "d.edxml"),
            "--seal",
            str(tmp_path / "d.seal"),
            "--trust",
            str(keys / "ca.crt"),
        ],
        capture_output=True,
        text=True,
    )
    assert verdict.returncode == 2 and "--gateway-cert" in verdict.stderr  # a usage mistake: no pin given
    pinned = requests.get(base + "/.well-known/gateway-seal.pem", timeout=10).content
    (tmp_path / "pinned").mkdir()
    (tmp_path / "pinned" / "gateway-seal.pem").write_bytes(pinned)  # kept apart from what is received
    command = ["verify", str(tmp_path / "d.edxml"), "--seal", str(tmp_path / "d.seal"), "--trust", str(keys / "ca.crt")]
    command += ["--gateway-cert", str(tmp_path / "pinned" / "gateway-seal.pem")]
    verdict = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *command],
        capture_output=True,
        text=True,
    )
    assert verdict.returncode == 0 and "verdict: valid" in verdict.stdout, verdict.stdout

    reply = requests.post(
        base + "/v1/status",
        data=signed(q4, "status-03.edxml"),
        timeout=10,
        headers={**auth_q4, "Content-Type": "application/xml"},
    )
    assert reply.status_code == 202, reply.text
    assert requests.post(f"{base}/v1/inbox/{doc_id}/ack", headers=auth_q4, timeout=10).status_code == 200
    history = requests.get(f"{base}/v1/documents/{doc_id}", headers={"Authorization": f"Bearer {t_hcm}"}, timeout=10)
    assert [s["status_code"] for s in history.json()["statuses"]] == ["03"]

    bomb = requests.post(
        base + "/v1/documents",
        data=b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
        timeout=10,
        headers={"Authorization": f"Bearer {t_hcm}"},
    )
    assert bomb.status_code == 400 and bomb.headers["Content-Type"] == "application/problem+json"

    def chunks():  # a generator body makes requests send Transfer-Encoding: chunked, with no Content-Length
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    oversized = requests.post(
        base + "/v1/documents", data=chunks(), headers={"Authorization": f"Bearer {t_hcm}"}, timeout=30
    )
    assert oversized.status_code == 413 and oversized.json()["code"] == "too-large"
    metrics = requests.get(base + "/metrics", timeout=10).text
    assert 'gateway_documents_total{code="",kind="document",outcome="accepted"}' in metrics


def test_citizen_logs_in_at_the_development_idp_and_files_a_dossier_through_gunicorn(server):
    from urllib.parse import parse_qs, urlsplit

    from tests.support import authorization_request

    base, _keys = server
    verifier, params = authorization_request("citizen-app", "http://127.0.0.1:9/cb")
    discovery = requests.get(base + "/dev-idp/.well-known/openid-configuration", timeout=10).json()
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert "Lê Minh Châu" in requests.get(discovery["authorization_endpoint"], params=params, timeout=10).text
    redirect = requests.post(
        discovery["authorization_endpoint"],
        data={**params, "citizen": "2", "level": "2"},
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        discovery["token_endpoint"],
        timeout=10,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": params["redirect_uri"],
            "client_id": "citizen-app",
            "code_verifier": verifier,
        },
    ).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(base + "/v1/me", headers=auth, timeout=10).json()["personal_id"] == "********4321"
    filed = requests.post(
        base + "/v1/dossiers",
        headers=auth,
        timeout=10,
        json={"procedure": "1.000494", "fields": {"ly_do": "Đăng ký đi học"}},
    )
    assert filed.status_code == 202, filed.text
    mine = requests.get(base + "/v1/dossiers", headers=auth, timeout=10).json()["items"]
    assert [d["id"] for d in mine] == [filed.json()["id"]]


def test_workers_sign_the_tail_of_the_audit_log_within_a_couple_of_seconds(server):
    import sqlalchemy as sa

    base, keys = server
    url = f"sqlite:///{keys.parent / 'gw.db'}"
    engine = sa.create_engine(url)
    _token(base, keys, "000.00.31.H29")  # one more audit entry, and nobody asks for a checkpoint
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            head = conn.execute(sa.text("SELECT size FROM audit_head")).scalar_one()
            signed = conn.execute(sa.text("SELECT max(size) FROM audit_checkpoints")).scalar_one()
        if signed == head:
            break
        time.sleep(0.2)
    engine.dispose()
    assert signed == head


def test_only_the_signer_process_holds_the_checkpoint_key(server):
    """Issue 13: the web workers serve without the key; `gateway audit signer` signs for them."""
    base, keys = server
    ready = requests.get(base + "/readyz", timeout=10).json()
    assert ready["details"]["checkpoint_signer"]["signs_here"] is False, ready
    holders = []  # (command, may sign) of every process of this deployment
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(keys.parent).encode() not in environ or b"gateway" not in b" ".join(cmdline):
            continue
        signs = b"GATEWAY_SIGNS_CHECKPOINTS=false" not in environ.split(b"\0")
        holders.append((b" ".join(cmdline[2:5]).decode(), signs))
    assert [h for h in holders if h[1] and "audit signer" not in h[0] and "serve" not in h[0]] == [], holders
    assert any("audit signer" in h[0] for h in holders), holders
    assert any("gunicorn" in h[0] and not h[1] for h in holders), holders  # tests/test_checkpoint_signer: never read


def test_healthz_stays_fast_while_slow_clients_trickle_headers(server):
    """Issue 10, finding 1: the review's 16 trickling connections (here 32) stalled every probe under gthread."""
    from bench.slowloris import under_attack

    port = int(server[0].rsplit(":", 1)[1])
    probe = under_attack(port, seconds=6, connections=32, interval=2.0)
    assert probe.errors == 0
    assert probe.percentile(0.99) < 0.1, f"p99 {probe.percentile(0.99) * 1000:.0f} ms over {len(probe.timings)} probes"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET /healthz\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed-request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", 400, "malformed-request"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, "headers-too-large"),
        (
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "malformed-request",
        ),
    ],
    ids=["raw-0xff", "nul", "long-target", "large-head", "bad-chunk"],
)
def test_requests_gunicorn_answered_with_html_are_problem_json(server, raw, status, code):
    """Issue 10, finding 9: these came back as gunicorn's HTML error pages."""
    import json

    head, body = _raw_answer(server, raw)
    assert head.startswith(b"HTTP/1.1 %d" % status), head
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["code"] == code


def _raw_answer(server, raw: bytes) -> tuple[bytes, bytes]:
    port = int(server[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (
            b"GET /audit/search?agency=" + b"a" * 16000 + b" HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
            414,
            "uri-too-long",
        ),
        (
            b"GET /audit/search?agency=\xff\xfe HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
            400,
            "malformed-request",
        ),
        (b"GET /audit/ HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 20000 + b"\r\n\r\n", 431, "headers-too-large"),
        (b"GET //audit/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (b"GET /%61udit/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (b"GET /audit?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (b"GET http://x/audit/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
    ],
    ids=["pasted-search", "raw-bytes", "large-cookie", "double-slash", "percent-encoded", "no-slash", "absolute-form"],
)
def test_a_browser_refused_by_the_front_on_a_workbench_page_gets_the_workbench_error_page(server, raw, status, code):
    """Issue 11 review: a search pasted into the workbench came back as raw problem+json (414)."""
    head, body = _raw_answer(server, raw)
    assert head.startswith(b"HTTP/1.1 %d" % status), head
    assert b"content-type: text/html; charset=utf-8" in head.lower()
    assert b"content-security-policy: default-src 'none'; style-src 'unsafe-inline'" in head.lower()
    page = body.decode()
    assert code in page and 'href="/audit/' in page and "<form" in page  # the frame, the code, a way back
    assert 'lang="vi"' in page and "hãy" in page  # worded in the workbench's language, saying what to do


def test_a_refused_head_request_gets_the_headers_and_no_body(server):
    head, body = _raw_answer(server, b"HEAD /audit/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and b"content-length: " in head.lower() and body == b""


def test_the_fronts_error_pages_are_rendered_once_not_per_refusal(app):
    """Issue 11 review: rendering per refusal queued a flood of 414s in the app's threads ahead of /healthz."""
    from gateway.serving.refusals import FrontRefusal
    from gateway.serving.worker import refusal_page

    lookup = refusal_page(app)

    def fails(*_args, **_kwargs):
        raise AssertionError("rendered at refusal time")

    app.extensions["gateway.error_pages"]["/audit/"] = fails
    refusal = FrontRefusal("uri-too-long", "the request target is longer than 8192 bytes")
    first = lookup(refusal, "GET", "/audit/search")
    assert first is not None and lookup(refusal, "GET", "/audit/search") is first
    assert lookup(refusal, "POST", "/audit/search") is None and lookup(refusal, "GET", "/v1/documents") is None


def test_a_script_refused_by_the_front_outside_the_workbench_still_gets_problem_json(server):
    import json

    head, body = _raw_answer(server, b"GET /v1/documents?x=" + b"a" * 16000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["code"] == "uri-too-long"
