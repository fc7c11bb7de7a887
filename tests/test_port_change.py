"""Changing the port, as a new user does (issue 11): ``gateway serve --port N`` is served at :N.

Tokens, the workbench login and the development PKI follow the port served; a command in a second
shell, with none of the first shell's variables, finds the deployment through ``gateway.toml`` and
``var/serving.json``; and the audit log keeps one origin, so an export across the change verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from gateway.documents.signing import sign_edxml
from gateway.trust import pki
from tests.servers import wait_ready
from tests.support import ASSERTION_TYPE, sample
from tests.test_server import _free_port

pytestmark = pytest.mark.slow
HCM, Q4 = "000.00.00.H29", "000.00.04.H29"


def _shell(**extra: str) -> dict[str, str]:
    """A new shell: the machine's environment with no GATEWAY_* variable of anyone's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


def _gateway(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env or _shell(),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def _serving(home: Path, port: int) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", "1"],
        env=_shell(GATEWAY_DEMO="true"),  # what run.sh exports, and nothing else
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _token_from_second_shell(home: Path, base: str, code: str) -> str:
    """`gateway client assertion` with no --audience and no variables: the audience must be this server's."""
    made = _gateway(home, "client", "assertion", "--agency", code, "--key", f"keys/agencies/{code}/client.key")
    assert made.returncode == 0, made.stderr
    answer = requests.post(
        base + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": made.stdout.strip(),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _send(home: Path, base: str, number: int) -> None:
    folder = home / "keys" / "agencies" / HCM
    edxml = sample("cong-van.edxml").replace(b"1024/UBND-VX<", f"{number}/UBND-VX<".encode())
    signed = sign_edxml(
        edxml, pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
    )
    token = _token_from_second_shell(home, base, HCM)
    sent = requests.post(
        base + "/v1/documents",
        data=signed,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
        timeout=30,
    )
    assert sent.status_code == 202, sent.text  # the signer's status is asked of the dev PKI at the port served


def test_a_new_port_is_the_public_url_and_the_audit_log_keeps_one_origin(tmp_path):
    home = tmp_path
    first_port, second_port = _free_port(), _free_port()
    first = _gateway(home, "init", "--demo", "--port", str(first_port), env=_shell(GATEWAY_DEMO="true"))  # as run.sh
    assert first.returncode == 0, first.stderr
    assert "demo = true" in (home / "gateway.toml").read_text()
    signing = pki.load_certificates(home / "keys" / "agencies" / HCM / "signing.crt")[0]
    assert f"http://127.0.0.1:{first_port}/dev-pki/ocsp" in str(signing.extensions)  # the port to be served
    with _serving(home, first_port) as base:
        _send(home, base, 1001)
    with _serving(home, second_port) as base:
        _send(home, base, 1002)  # certificates issued for :8080 and a log begun at the first port
        login = requests.get(base + "/audit/login", allow_redirects=False, timeout=10)
        assert login.headers["Location"].startswith(base + "/dev-idp/"), login.headers["Location"]
        metadata = requests.get(base + "/dev-idp/.well-known/openid-configuration", timeout=10).json()
        assert metadata["issuer"] == base + "/dev-idp"
        exported = _gateway(home, "audit", "export", "--out", "audit.zip")
        assert exported.returncode == 0, exported.stderr
    vkey = _gateway(home, "audit", "vkey").stdout.strip()
    assert vkey.startswith(f"127.0.0.1:{first_port}/audit+")  # the log keeps the name it started with
    verdict = _gateway(home, "audit", "verify", "audit.zip", "--vkey", vkey)
    assert verdict.returncode == 0 and verdict.stdout.startswith("VALID"), verdict.stdout + verdict.stderr
