"""The witness (C2SP tlog-witness add-checkpoint, tlog-cosignature cosignature/v1): every status code,
rollbacks, forks, bad proofs, concurrent requests for one log, and its own HTTP server."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import AnyOfVerifiers, Checkpoint, NoteSigner, split_note
from gateway.audit.merkle import LeafHashes, consistency_path, root_hash
from gateway.policy import Refusal
from gateway.witness.app import create_witness_app
from gateway.witness.cosignature import CosignatureSigner, CosignatureVerifier
from gateway.witness.protocol import Witness
from gateway.witness.state import WitnessState

ORIGIN = "gateway.test/audit"


class Log:
    """A log that signs what it is told: honest, or forked from some index."""

    def __init__(self, signer: NoteSigner, prefix: str = "entry") -> None:
        self.signer, self.prefix = signer, prefix
        self.entries: list[bytes] = []

    def grow(self, n: int) -> None:
        self.entries += [f"{self.prefix} {len(self.entries) + i}".encode() for i in range(n)]

    def tree(self) -> LeafHashes:
        return LeafHashes.of_entries(self.entries)

    def checkpoint(self, size: int | None = None) -> str:
        size = len(self.entries) if size is None else size
        return self.signer.sign(Checkpoint(self.signer.name, size, root_hash(self.tree(), size)).text())

    def request(self, old: int, size: int | None = None, *, proof: list[bytes] | None = None) -> bytes:
        size = len(self.entries) if size is None else size
        if proof is None:
            proof = consistency_path(self.tree(), old, size) if 0 < old < size else []
        lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
        return f"old {old}\n{lines}\n{self.checkpoint(size)}".encode()


@pytest.fixture
def log_key() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def cosigner() -> CosignatureSigner:
    return CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate())


@pytest.fixture
def witness(tmp_path: Path, log_key: NoteSigner, cosigner: CosignatureSigner) -> Witness:
    clock = iter(range(1_700_000_000, 1_800_000_000))
    return Witness(
        cosigner, {ORIGIN: AnyOfVerifiers((log_key.verifier,))}, WitnessState(tmp_path / "w.db"), lambda: next(clock)
    )


def _cosigned_at(witness: Witness, note: str, answer_body: str) -> int:
    text, _ = split_note(note)
    stamp = witness.signer.verifier.timestamp(text, answer_body.rstrip("\n"))
    assert stamp is not None
    return stamp


def test_a_first_checkpoint_and_each_consistent_next_one_are_cosigned_and_the_cosignature_verifies(witness, log_key):
    log = Log(log_key)
    log.grow(5)
    first = witness.add_checkpoint(log.request(0))
    assert first.status == 200 and first.body.startswith("\u2014 witness.test/w1 ") and first.body.endswith("\n")
    earlier = _cosigned_at(witness, log.checkpoint(), first.body)
    for grow in (1, 2, 7, 16):
        old = len(log.entries)
        log.grow(grow)
        answer = witness.add_checkpoint(log.request(old))
        assert answer.status == 200, answer.body
        later = _cosigned_at(witness, log.checkpoint(), answer.body)
        assert later > earlier
        earlier = later
    assert witness.state.latest(ORIGIN).size == len(log.entries)


def test_the_same_checkpoint_again_is_cosigned_but_a_different_root_at_that_size_is_a_fork(witness, log_key):
    log = Log(log_key)
    log.grow(4)
    assert witness.add_checkpoint(log.request(0)).status == 200
    assert witness.add_checkpoint(log.request(4)).status == 200
    fork = Log(log_key, prefix="rewritten")
    fork.grow(4)
    refused = witness.add_checkpoint(fork.request(4))
    assert refused.status == 422
    assert witness.state.latest(ORIGIN).root == root_hash(log.tree(), 4)
    assert [status for _, status, _ in witness.state.refusals(ORIGIN)] == [422]  # kept as evidence


def test_a_fork_from_an_earlier_index_is_refused_with_422_and_nothing_changes(witness, log_key):
    log = Log(log_key)
    log.grow(6)
    assert witness.add_checkpoint(log.request(0)).status == 200
    fork = Log(log_key, prefix="other history")
    fork.grow(9)
    # the forked log sends the proof it can make (from its own tree), which cannot reach the cosigned root
    refused = witness.add_checkpoint(fork.request(6))
    assert refused.status == 422 and "does not verify" in refused.body
    assert witness.state.latest(ORIGIN).size == 6


def test_a_rollback_is_refused_and_a_stale_old_size_gets_409_with_the_cosigned_size(witness, log_key):
    log = Log(log_key)
    log.grow(10)
    assert witness.add_checkpoint(log.request(0)).status == 200
    smaller = witness.add_checkpoint(log.request(0, 7))
    assert smaller.status == 409 and smaller.body == "10\n" and smaller.content_type == "text/x.tlog.size"
    behind = witness.add_checkpoint(log.request(7, 10))
    assert behind.status == 409 and behind.body == "10\n"
    above = witness.add_checkpoint(log.request(10, 7))
    assert above.status == 400
    assert witness.state.latest(ORIGIN).size == 10


def test_unknown_origin_is_404_and_a_missing_or_bad_log_signature_is_403(witness, log_key):
    stranger = Log(NoteSigner("elsewhere.test/log", Ed25519PrivateKey.generate()))
    stranger.grow(2)
    assert witness.add_checkpoint(stranger.request(0)).status == 404
    impostor = Log(NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))  # right name, another key
    impostor.grow(2)
    assert witness.add_checkpoint(impostor.request(0)).status == 403
    log = Log(log_key)
    log.grow(2)
    note = log.checkpoint()
    body, sep, signatures = note.rpartition("\n\n")
    tampered = body.replace("\n2\n", "\n3\n") + sep + signatures  # the trusted key's line over other text
    assert witness.add_checkpoint(f"old 0\n\n{tampered}".encode()).status == 403
    assert witness.state.latest(ORIGIN) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 01\n\nx",  # a leading zero
        b"old -1\n\nx",
        b"new 0\n\nx",
        b"old 0\nnot base64!\n\nx",
        b"old 0\n" + base64.b64encode(b"short") + b"\n\nx",
        b"old 0\n" + (base64.b64encode(b"\0" * 32) + b"\n") * 64 + b"\nx",  # more than 63 proof lines
        b"\xff\xfe",
        b"old 0",  # no blank line
    ],
)
def test_a_malformed_request_is_400(witness, body):
    assert witness.add_checkpoint(body).status == 400


def test_proofs_that_are_wrong_are_422(witness, log_key):
    log = Log(log_key)
    log.grow(8)
    assert witness.add_checkpoint(log.request(0, 5)).status == 200
    good = consistency_path(log.tree(), 5, 8)
    wrong = [good[0], *[bytes(32)] * (len(good) - 1)] if len(good) > 1 else [bytes(32)]
    assert witness.add_checkpoint(log.request(5, 8, proof=wrong)).status == 422
    assert witness.add_checkpoint(log.request(5, 8, proof=[])).status == 422
    assert witness.add_checkpoint(log.request(5, 8)).status == 200
    assert witness.add_checkpoint(log.request(8, 8, proof=[bytes(32)])).status == 422  # same size: no proof
    assert witness.add_checkpoint(log.request(8, 8)).status == 200


def test_a_size_zero_checkpoint_needs_the_empty_root_and_no_proof(witness, log_key):
    text = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()).text()
    assert witness.add_checkpoint(f"old 0\n\n{log_key.sign(text)}".encode()).status == 200
    wrong = Checkpoint(ORIGIN, 0, bytes(32)).text()
    assert witness.add_checkpoint(f"old 0\n\n{log_key.sign(wrong)}".encode()).status == 422
    log = Log(log_key)
    log.grow(3)
    assert witness.add_checkpoint(log.request(0, proof=[bytes(32)])).status == 422


def test_concurrent_requests_for_one_log_never_roll_the_record_back(witness, log_key):
    """The race the spec warns of: A (size N) and B (size N+K) both from the same old size."""
    log = Log(log_key)
    log.grow(4)
    assert witness.add_checkpoint(log.request(0)).status == 200
    log.grow(60)
    requests = [log.request(4, size) for size in range(5, 65)]
    answers: list[int] = []
    barrier = threading.Barrier(8)

    def send(chunk: list[bytes]) -> None:
        barrier.wait()
        answers.extend(witness.add_checkpoint(body).status for body in chunk)

    threads = [threading.Thread(target=send, args=(requests[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(200) == 1 and answers.count(409) == len(requests) - 1
    winner = witness.state.latest(ORIGIN).size
    assert 5 <= winner <= 64
    log_root = root_hash(log.tree(), winner)
    assert witness.state.latest(ORIGIN).root == log_root


def test_the_witness_state_survives_a_restart(tmp_path, log_key, cosigner):
    log = Log(log_key)
    log.grow(3)
    logs = {ORIGIN: AnyOfVerifiers((log_key.verifier,))}
    assert Witness(cosigner, logs, WitnessState(tmp_path / "w.db")).add_checkpoint(log.request(0)).status == 200
    again = Witness(cosigner, logs, WitnessState(tmp_path / "w.db"))
    assert again.add_checkpoint(log.request(0)).status == 409


def test_cosignature_keys_parse_round_trip_and_refuse_other_key_types(cosigner, log_key):
    assert CosignatureVerifier.parse(cosigner.vkey).vkey == cosigner.vkey
    with pytest.raises(Refusal):
        CosignatureVerifier.parse(log_key.vkey)  # a checkpoint key (type 0x01) is not a cosigner key
    name, key_id, key = cosigner.vkey.split("+", 2)
    with pytest.raises(Refusal):
        CosignatureVerifier.parse(f"{name}x+{key_id}+{key}")
    with pytest.raises(ValueError):
        Witness(cosigner, {}, WitnessState.__new__(WitnessState))


def test_the_http_interface_speaks_the_protocol(witness, log_key):
    client = create_witness_app(witness).test_client()
    log = Log(log_key)
    log.grow(3)
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert client.get(f"/{origin_hash}/checkpoint").status_code == 404
    answer = client.post("/add-checkpoint", data=log.request(0))
    assert answer.status_code == 200
    served = client.get(f"/{origin_hash}/checkpoint")
    assert served.status_code == 200 and served.get_data(as_text=True) == log.checkpoint() + answer.get_data(
        as_text=True
    )
    conflict = client.post("/add-checkpoint", data=log.request(0))
    assert conflict.status_code == 409 and conflict.headers["Content-Type"] == "text/x.tlog.size"
    assert client.get("/add-checkpoint").status_code == 405
    assert client.post("/add-checkpoint", data=b"x" * 70_000).status_code == 413


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, vkey: str, port: int, *, name: str = "witness.test/w1"):  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time
    import urllib.request

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "witness",
            "serve",
            "--name",
            name,
            "--key",
            str(tmp_path / "w.key"),
            "--state",
            str(tmp_path / "w.db"),
            "--log",
            vkey,
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(process.stderr.read().decode() if process.stderr else "no output")


def test_gateway_witness_serve_is_a_real_server_whose_state_outlives_it(tmp_path, log_key):
    import http.client

    from click.testing import CliRunner

    from gateway.cli import main

    made = CliRunner().invoke(
        main, ["witness", "init", "--name", "witness.test/w1", "--key", str(tmp_path / "w.key"), "--json"]
    )
    assert made.exit_code == 0, made.output
    again = CliRunner().invoke(main, ["witness", "init", "--name", "witness.test/w1", "--key", str(tmp_path / "w.key")])
    assert again.exit_code != 0 and "keeps its key" in again.output
    log = Log(log_key)
    log.grow(3)
    port = _free_port()

    def post(body: bytes) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/add-checkpoint", body=body)
        response = conn.getresponse()
        return response.status, response.read().decode()

    for expected in (200, 409):  # the second time, after a restart: it remembers size 3
        process = _serve(tmp_path, log_key.vkey, port)
        try:
            status, body = post(log.request(0))
            assert status == expected, body
            if status == 200:
                import json

                vkey = json.loads(made.output)["vkey"]
                text, _ = split_note(log.checkpoint())
                assert CosignatureVerifier.parse(vkey).timestamp(text, body.rstrip("\n"))
            else:
                assert body == "3\n"
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_anyone_replaying_a_public_checkpoint_cannot_push_out_the_evidence_of_a_fork(witness, log_key):
    """Review: 1005 padded replays of the public checkpoint (409 each) evicted the fork evidence kept."""
    log = Log(log_key)
    log.grow(4)
    assert witness.add_checkpoint(log.request(0)).status == 200
    forked = Log(log_key, prefix="rewritten")
    forked.grow(4)
    assert witness.add_checkpoint(forked.request(4)).status == 422  # the log signed a fork: evidence
    padding = "".join(f"\u2014 junk.example/k{i} {base64.b64encode(bytes(68)).decode()}\n" for i in range(300))
    replay = f"old 1\n\n{log.checkpoint()}{padding}".encode()
    for _ in range(1100):
        assert witness.add_checkpoint(replay).status == 409
    kept = witness.state.refusals(ORIGIN)
    assert [status for _at, status, _reason in kept] == [422]  # replays are nobody's evidence
    with witness.state._transaction(write=False) as conn:
        stored = conn.execute("SELECT request FROM refused").fetchone()[0]
    assert "junk.example" not in stored and stored.count("\u2014 ") == 1  # the log's own signature only


def test_a_checkpoint_size_beyond_64_bits_is_refused_not_a_server_error(witness, log_key):
    huge = log_key.sign(f"{ORIGIN}\n{2**63}\n{base64.b64encode(bytes(32)).decode()}\n")
    answer = witness.add_checkpoint(f"old 0\n\n{huge}".encode())
    assert answer.status == 403 and "above" in answer.body
    assert witness.add_checkpoint(f"old {2**64}\n\n{huge}".encode()).status == 400


def test_another_body_for_a_size_already_cosigned_is_refused(witness, log_key):
    log = Log(log_key)
    log.grow(3)
    assert witness.add_checkpoint(log.request(0)).status == 200
    text = Checkpoint(ORIGIN, 3, root_hash(log.tree(), 3)).text() + "extension line\n"
    answer = witness.add_checkpoint(f"old 3\n\n{log_key.sign(text)}".encode())
    assert answer.status == 422 and "differs" in answer.body
    assert witness.add_checkpoint(log.request(3)).status == 200  # the same body again is fine
