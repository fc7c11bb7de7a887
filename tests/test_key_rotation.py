"""The gateway's own keys rotate with an overlap and no failed request (issue 10).

First each kind in-process with a controlled clock (what verifies, what is published, when the old
key stops being accepted); then all three rotated by the real command while a real ``gateway
serve`` answers a steady stream of token requests, submissions, seal and checkpoint checks.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from gateway import create_app
from gateway.audit.bundle import export_bundle, verify_bundle
from gateway.audit.checkpoint import AnyOfVerifiers, NoteVerifier, open_checkpoint
from gateway.documents.seal import verify_seal
from gateway.keyring import KeyRing, promote, start_rotation
from gateway.keys import load_development_ca
from gateway.policy import Refusal
from gateway.trust import pki
from gateway.trust.chain import TrustStore
from tests.conftest import make_config, register_agencies
from tests.servers import free_port, wait_ready
from tests.support import ASSERTION_TYPE, HCM, GatewayClient, Pki, sample


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rotating(sqlite_url: str, dev_pki: Pki, tmp_path: Path) -> Iterator[tuple[Any, Clock]]:
    """An app on its own copy of the keys (rotations rewrite key files), with the ring on a fake clock."""
    keys = tmp_path / "keys"
    shutil.copytree(dev_pki.keys_dir, keys)
    config = dataclasses.replace(make_config(sqlite_url, dev_pki), keys_dir=keys)
    app = create_app(config)
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    clock = Clock()
    ring = KeyRing(config, clock=clock)
    svc.ring.snapshot = ring.snapshot  # the services share one ring object: give it the controllable one
    object.__setattr__(svc.ring, "_clock", clock)
    yield app, clock
    svc.db.dispose()


def _refresh(app: Any) -> None:
    svc = app.extensions["gateway"]
    os.utime(svc.config.keys_dir / "rotation", None)  # file times have a coarse grain on some filesystems
    svc.ring._seen = None
    svc.ring.refresh()


def test_an_access_token_key_rotates_with_both_keys_accepted_during_the_overlap(rotating):
    app, clock = rotating
    svc = app.extensions["gateway"]
    before = svc.tokens.issue(HCM).token
    old_kid = svc.tokens.kid

    rotation = start_rotation(svc.config, "token", publish_seconds=5)
    _refresh(app)
    kids = [k["kid"] for k in svc.tokens.jwks()["keys"]]
    assert len(kids) == 2 and kids[0] == old_kid  # announced, not yet signing
    assert svc.tokens.kid == old_kid and svc.tokens.verify(before) == HCM

    promote(svc.config, rotation, overlap_seconds=600)
    _refresh(app)
    after = svc.tokens.issue(HCM).token
    assert svc.tokens.kid != old_kid and {k["kid"] for k in svc.tokens.jwks()["keys"]} == {old_kid, svc.tokens.kid}
    assert svc.tokens.verify(before) == HCM and svc.tokens.verify(after) == HCM

    clock.now += 601  # the overlap is over: the old key is neither accepted nor published
    svc.ring.refresh()
    with pytest.raises(Refusal):
        svc.tokens.verify(before)
    assert svc.tokens.verify(after) == HCM and [k["kid"] for k in svc.tokens.jwks()["keys"]] == [svc.tokens.kid]


def test_a_checkpoint_key_rotation_keeps_old_verifier_keys_working_and_old_checkpoints_readable(
    rotating, dev_pki, tmp_path
):
    app, clock = rotating
    svc = app.extensions["gateway"]
    old = NoteVerifier.parse(svc.checkpoints.vkey)
    first = svc.checkpoints.refresh(force=True)

    rotation = start_rotation(svc.config, "checkpoint", publish_seconds=5)
    _refresh(app)
    promote(svc.config, rotation, overlap_seconds=600)
    _refresh(app)
    new = NoteVerifier.parse(svc.checkpoints.vkey)
    assert new.key_id != old.key_id and len(svc.checkpoints.vkeys) == 2
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    sender.token()
    assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
    during = svc.checkpoints.refresh(force=True)
    assert open_checkpoint(during.note, old).size == open_checkpoint(during.note, new).size  # cosigned

    clock.now += 601
    svc.ring.refresh()
    sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024/", b"1025/")))
    later = svc.checkpoints.refresh(force=True)
    assert open_checkpoint(later.note, new).size > during.size
    with pytest.raises(Refusal):
        open_checkpoint(later.note, old)  # the overlap is over: only the new key signs
    assert open_checkpoint(first.note, svc.ring.checkpoint_verifier).size == first.size  # stored ones still open
    assert old.vkey in svc.checkpoints.vkeys  # and the retired verifier key stays published

    bundle = tmp_path / "across-the-rotation.zip"  # checkpoints signed by the old key, both, then the new one
    with svc.db.read() as conn:
        bundle.write_bytes(export_bundle(conn, svc.checkpoints, 0, later.size))
    assert verify_bundle(bundle, AnyOfVerifiers((old, new))).valid
    assert not verify_bundle(bundle, new).valid  # the older checkpoints need the older key


def test_a_seal_key_rotation_publishes_both_certificates_and_old_seals_still_verify(
    rotating, agency, dev_pki, tmp_path
):
    app, _clock = rotating
    svc = app.extensions["gateway"]
    client = app.test_client()
    sender = GatewayClient(client, dev_pki.agencies[HCM])
    sender.token()
    doc = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    old_seal = sender.get(f"/v1/documents/{doc}/seal").data

    ca = load_development_ca(svc.config.keys_dir)
    issued = pki.issue_signing_certificate(ca, "Gateway seal 2", "Interconnect Gateway", key=pki.generate_key("ec"))
    pki.save_private_key(issued.key, tmp_path / "seal2.key")
    pki.save_certificate(issued.cert, tmp_path / "seal2.crt")
    with pytest.raises(ValueError, match="not the certificate"):
        start_rotation(
            svc.config, "seal", publish_seconds=5, new_key=tmp_path / "seal2.key", new_cert=dev_pki.keys_dir / "ca.crt"
        )
    rotation = start_rotation(
        svc.config, "seal", publish_seconds=5, new_key=tmp_path / "seal2.key", new_cert=tmp_path / "seal2.crt"
    )
    _refresh(app)
    promote(svc.config, rotation, overlap_seconds=600)
    _refresh(app)
    published = x509.load_pem_x509_certificates(client.get("/.well-known/gateway-seal.pem").data)
    assert issued.cert in published and any(c != issued.cert for c in published)

    second = sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024/", b"1026/"))).get_json()["id"]
    new_seal = sender.get(f"/v1/documents/{second}/seal").data
    trust = TrustStore(pki.load_certificates(svc.config.keys_dir / "ca.crt"))
    assert verify_seal(new_seal, trust, [issued.cert]).document_uuid == second  # sealed with the new key
    assert verify_seal(old_seal, trust, published).document_uuid == doc  # the old seal, with the bundle


# --- all three, by the real command, while a real server answers traffic ---------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    home = tmp_path_factory.mktemp("rotation")
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite:///{home / 'gw.db'}",
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_DEMO": "true",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    env.pop("GATEWAY_CONFIG", None)
    cli = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*cli, "init", "--demo"], env=env, check=True, capture_output=True, cwd=home)
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=home, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    yield base, home / "keys", env
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


class Traffic:
    """Token requests, submissions and seal and checkpoint checks in a loop; every failure is kept."""

    def __init__(self, base: str, keys: Path, vkey: str) -> None:
        from gateway.documents.signing import sign_edxml

        self.base, self.failures, self.done = base, [], 0
        folder = keys / "agencies" / HCM
        self.client_key = pki.load_private_key(folder / "client.key")
        signing_key, chain = pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
        self.sign = lambda data: sign_edxml(data, signing_key, chain)
        self.trust = TrustStore(pki.load_certificates(keys / "ca.crt"))
        self.vkey_at_start = NoteVerifier.parse(vkey)  # what verifiers knew before any rotation
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _token(self) -> str:
        import jwt

        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": HCM,
                "sub": HCM,
                "aud": self.base + "/oauth/token",
                "iat": now,
                "exp": now + 60,
                "jti": os.urandom(8).hex(),
            },
            self.client_key,
            algorithm="ES256",
        )
        answer = requests.post(
            self.base + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            timeout=10,
        )
        self._expect(answer, 200, "token")
        return str(answer.json()["access_token"]) if answer.status_code == 200 else ""

    def _expect(self, answer: requests.Response, status: int, what: str) -> None:
        if answer.status_code != status:
            self.failures.append(f"{what}: {answer.status_code} {answer.text[:200]}")

    def _run(self) -> None:
        token, n = self._token(), 0
        while not self.stop.is_set():
            n += 1
            headers = {"Authorization": f"Bearer {token}"}
            self._expect(
                requests.get(self.base + "/v1/inbox", headers=headers, timeout=10), 200, "inbox with an older token"
            )
            data = sample("cong-van.edxml").replace(b"1024/UBND-VX<", f"{n}/UBND-VX<".encode())
            sent = requests.post(
                self.base + "/v1/documents",
                data=self.sign(data),
                headers={**headers, "Content-Type": "application/xml"},
                timeout=10,
            )
            self._expect(sent, 202, "submit")
            if sent.status_code == 202:
                seal = requests.get(
                    f"{self.base}/v1/documents/{sent.json()['id']}/seal", headers=headers, timeout=10
                ).content
                pinned = x509.load_pem_x509_certificates(
                    requests.get(self.base + "/.well-known/gateway-seal.pem", timeout=10).content
                )
                try:
                    verify_seal(seal, self.trust, pinned)
                except Refusal as refusal:
                    self.failures.append(f"seal: {refusal.reason}")
            note = requests.get(self.base + "/v1/audit/checkpoint", timeout=10).text
            try:
                open_checkpoint(note, self.vkey_at_start)  # the verifier key known before any rotation
            except Refusal as refusal:
                self.failures.append(f"checkpoint: {refusal.reason}")
            if n % 3 == 0:
                token = self._token()  # a fresh token now and then, signed by whichever key is current
            self.done += 1
            time.sleep(0.05)


@pytest.mark.slow
def test_rotating_all_three_keys_while_traffic_flows_fails_no_request(live):
    base, keys, env = live
    vkey = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "vkey"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    traffic = Traffic(base, keys, vkey)
    traffic.thread.start()
    try:
        time.sleep(1)
        for kind in ("token", "checkpoint", "seal"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "keys",
                    "rotate",
                    kind,
                    "--publish-seconds",
                    "3",
                    "--overlap-hours",
                    "1",
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            time.sleep(2)  # traffic with the new key current and the old one in its overlap
    finally:
        traffic.stop.set()
        traffic.thread.join(timeout=30)
    assert traffic.done > 10
    assert traffic.failures == []
    jwks = requests.get(base + "/.well-known/jwks.json", timeout=5).json()["keys"]
    assert len(jwks) == 2  # the old access-token key is still published during its overlap
    audit = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "vkey"], env=env, capture_output=True, text=True
    )
    assert audit.stdout.strip() != vkey  # the command prints the new verifier key
