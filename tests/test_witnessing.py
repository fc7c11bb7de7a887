"""The gateway and two real witness processes: every checkpoint cosigned by both, one stopped and
caught up when it returns, and a history rewritten behind the signer's back detected by them."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import create_app
from gateway.audit.checkpoint import split_note
from gateway.cli import main
from gateway.store import upgrade
from gateway.witness.cosignature import CosignatureVerifier
from tests.conftest import make_config, register_agencies
from tests.test_witness import _free_port, _serve


class WitnessProcess:
    def __init__(self, folder: Path, name: str, log_vkey: str) -> None:
        self.folder, self.name, self.log_vkey = folder, name, log_vkey
        folder.mkdir(parents=True, exist_ok=True)
        made = CliRunner().invoke(main, ["witness", "init", "--name", name, "--key", str(folder / "w.key")])
        assert made.exit_code == 0, made.output
        self.vkey = made.output.split("vkey ", 1)[1].strip()
        self.port = _free_port()
        self.process = None

    @property
    def entry(self) -> str:
        return f"{self.vkey} http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = _serve(self.folder, self.log_vkey, self.port, name=self.name)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def witnessed(sqlite_url, dev_pki, tmp_path) -> Iterator[tuple[object, list[WitnessProcess]]]:  # type: ignore[no-untyped-def]
    first = create_app(make_config(sqlite_url, dev_pki))
    vkey = first.extensions["gateway"].checkpoints.vkey
    first.extensions["gateway"].db.dispose()
    witnesses = [WitnessProcess(tmp_path / f"w{i}", f"witness.test/w{i}", vkey) for i in (1, 2)]
    for w in witnesses:
        w.start()
    app = create_app(make_config(sqlite_url, dev_pki, witnesses=tuple(w.entry for w in witnesses)))
    register_agencies(app.extensions["gateway"], dev_pki)
    try:
        yield app, witnesses
    finally:
        app.extensions["gateway"].db.dispose()
        for w in witnesses:
            w.stop()


def _grow(app, n: int) -> None:  # type: ignore[no-untyped-def]
    from gateway.audit import AuditEvent

    svc = app.extensions["gateway"]
    for i in range(n):
        svc.audit.record(svc.db, AuditEvent(event="test.entry", outcome="ok", reason=f"entry {i}"))
    svc.checkpoints.refresh(force=True)


def _cosigners(app, witnesses) -> set[str]:  # type: ignore[no-untyped-def]
    note = app.test_client().get("/v1/audit/checkpoint").get_data(as_text=True)
    body, lines = split_note(note)
    signed = set()
    for w in witnesses:
        verifier = CosignatureVerifier.parse(w.vkey)
        if any(verifier.timestamp(body, line) for line in lines):
            signed.add(w.name)
    return signed


def test_every_checkpoint_is_cosigned_and_a_witness_that_was_down_is_caught_up(witnessed):
    app, witnesses = witnessed
    svc = app.extensions["gateway"]
    _grow(app, 3)
    svc.witnesses.publish()
    assert _cosigners(app, witnesses) == {"witness.test/w1", "witness.test/w2"}

    witnesses[1].stop()
    _grow(app, 4)
    svc.witnesses.publish()
    assert _cosigners(app, witnesses) == {"witness.test/w1"}
    ready = app.test_client().get("/readyz").get_json()
    behind = {w["name"]: w for w in ready["details"]["witnesses"]}
    assert behind["witness.test/w2"]["lag"] > 0 and behind["witness.test/w2"]["problem"]
    assert behind["witness.test/w1"]["lag"] == 0 and behind["witness.test/w1"]["problem"] is None
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'gateway_witness_lag_entries{witness="witness.test/w2"}' in metrics

    witnesses[1].start()
    _grow(app, 2)
    svc.witnesses.publish()  # from the size it last cosigned, with a consistency proof
    assert _cosigners(app, witnesses) == {"witness.test/w1", "witness.test/w2"}
    assert all(w["lag"] == 0 for w in app.test_client().get("/readyz").get_json()["details"]["witnesses"])


def test_a_history_rewritten_behind_the_signers_back_is_refused_by_the_witnesses(witnessed, dev_pki, tmp_path):
    """Someone with the database and the keys, who also threw away the signer's record: the witnesses
    still hold the size and root they cosigned, and will not cosign the other history."""
    app, witnesses = witnessed
    _grow(app, 5)
    app.extensions["gateway"].witnesses.publish()
    config = app.extensions["gateway"].config
    with app.extensions["gateway"].db.read() as conn:
        cosigned = min(w.size for w in app.extensions["gateway"].witnesses.status(conn))

    for entries in (2, cosigned + 4):  # a shorter and a longer rewritten history
        other = f"sqlite:///{tmp_path / f'rewritten-{entries}.db'}"
        upgrade(other)
        state = tmp_path / f"fresh-state-{entries}"  # the signer's record thrown away
        rewritten = create_app(dataclasses.replace(config, database_url=other, audit_state_dir=state))
        try:
            _grow(rewritten, entries)
            rewritten.extensions["gateway"].witnesses.publish()
            assert _cosigners(rewritten, witnesses) == set()
            with rewritten.extensions["gateway"].db.read() as conn:
                problems = [w.problem or "" for w in rewritten.extensions["gateway"].witnesses.status(conn)]
            expected = "rolled back" if entries < cosigned else "answered 422"
            assert all(expected in p for p in problems), problems
        finally:
            rewritten.extensions["gateway"].db.dispose()


def _policy(tmp_path: Path, app, witnesses, quorum: str) -> Path:  # type: ignore[no-untyped-def]
    lines = [f"log {app.extensions['gateway'].checkpoints.vkey}"]
    lines += [f"witness {w.name.split('/')[-1]} {w.vkey} http://127.0.0.1:{w.port}" for w in witnesses]
    lines += ["# both cities' witnesses must have seen it", quorum]
    path = tmp_path / "policy.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bundles_and_receipts_verify_only_with_the_policys_quorum_of_witnesses(witnessed, tmp_path, dev_pki):
    from gateway.audit.bundle import export_bundle
    from tests.support import HCM, GatewayClient, sample

    app, witnesses = witnessed
    svc = app.extensions["gateway"]
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    doc = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    svc.checkpoints.refresh(force=True)
    both = _policy(tmp_path, app, witnesses, "group both all w1 w2\nquorum both")

    def verify(kind: str, path: Path, policy: Path) -> tuple[int, str]:
        args = ["audit", "verify" if kind == "bundle" else "verify-receipt", str(path), "--policy", str(policy)]
        result = CliRunner().invoke(main, args)
        return result.exit_code, result.output

    def export(name: str) -> tuple[Path, Path]:
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
            (tmp_path / f"{name}.zip").write_bytes(export_bundle(conn, svc.checkpoints, 0, size))
        (tmp_path / f"{name}.json").write_bytes(sender.get(f"/v1/documents/{doc}/receipt").data)
        return tmp_path / f"{name}.zip", tmp_path / f"{name}.json"

    with svc.db.read() as conn:  # a bundle of a checkpoint signed by the log, not yet seen by any witness
        (tmp_path / "unwitnessed.zip").write_bytes(export_bundle(conn, svc.checkpoints, 0, svc.audit.size(conn)))
    code, output = verify("bundle", tmp_path / "unwitnessed.zip", both)
    assert code != 0 and "does not meet the policy's quorum" in output, output

    svc.witnesses.publish()
    bundle, receipt = export("witnessed")
    for kind, path in (("bundle", bundle), ("receipt", receipt)):
        code, output = verify(kind, path, both)
        assert code == 0 and "w1" in output and "w2" in output, output

    witnesses[1].stop()
    sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024/", b"1025/")))
    svc.checkpoints.refresh(force=True)
    svc.witnesses.publish()
    bundle, _ = export("one-down")
    assert verify("bundle", bundle, both)[0] != 0
    either = _policy(tmp_path, app, witnesses, "group either any w1 w2\nquorum either")
    assert verify("bundle", bundle, either)[0] == 0


@pytest.mark.parametrize(
    "text, reason",
    [
        ("log {log}\n", "no quorum line"),
        ("witness w1 {w}\nquorum w1\n", "lists no log"),
        ("log {log}\nquorum w1\n", "not a witness or group"),
        ("log {log}\nwitness w1 {w}\nwitness w2 {w}\nquorum w1\n", "listed twice"),
        ("log {log}\nwitness w1 {w}\ngroup g 2 w1\nquorum g\n", "threshold"),
        ("log {log}\nwitness none {w}\nquorum none\n", "cannot name"),
        ("log {log}\nwitness w1 {log}\nquorum w1\n", "cosignature/v1"),
        ("log {log}\nquorum none\nquorum none\n", "exactly one quorum"),
        ("log {log}\nbanana\nquorum none\n", "expected log, witness"),
        ("log not-a-key\nquorum none\n", "line 1: "),  # the key's own complaint, with its line
        ("log {log}\nwitness w1 {w}\ngroup g 2 w1 w1\nquorum g\n", "line 3: w1 would count twice"),
        ("log {log}\nwitness w1 {w}\nwitness w2 {w2}\ngroup g1 any w1 w2\ngroup g2 2 g1 w1\nquorum g2\n", "twice"),
        ("log {log}\nwitness w1 {logw}\nquorum w1\n", "a log cannot witness itself"),
        ("log {log}\nwitness w1 {w}\nwitness w2 garbage\nquorum w1\n", "line 3: "),
    ],
)
def test_a_policy_that_says_less_than_it_seems_to_is_refused_with_the_line(text, reason):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.audit.checkpoint import NoteSigner
    from gateway.audit.witness_policy import WitnessPolicy
    from gateway.policy import Refusal
    from gateway.witness.cosignature import CosignatureSigner

    log_key = Ed25519PrivateKey.generate()
    log = NoteSigner("gateway.test/audit", log_key).vkey
    w = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate()).vkey
    w2 = CosignatureSigner("witness.test/w2", Ed25519PrivateKey.generate()).vkey
    logw = CosignatureSigner("gateway.test/audit", log_key).vkey  # the log's key relabelled as a witness's
    with pytest.raises(Refusal, match=reason):
        WitnessPolicy.parse(text.format(log=log, w=w, w2=w2, logw=logw))


def test_a_corrupt_cosignature_refuses_the_note_wherever_it_stands():
    """Review: a valid line before a corrupt one was accepted, after it refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.audit.checkpoint import Checkpoint, NoteSigner
    from gateway.audit.witness_policy import WitnessPolicy
    from gateway.policy import Refusal
    from gateway.witness.cosignature import CosignatureSigner

    log = NoteSigner("gateway.test/audit", Ed25519PrivateKey.generate())
    w1 = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate())
    policy = WitnessPolicy.parse(f"log {log.vkey}\nwitness w1 {w1.vkey}\nquorum w1\n")
    text = Checkpoint("gateway.test/audit", 1, bytes(32)).text()
    good = w1.cosign(text, 1_800_000_000).rstrip("\n")
    name, blob = good[2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    bad = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    note = log.sign(text)
    assert policy.accept(note + good + "\n").cosigned_by == ("w1",)
    for lines in ((good, bad), (bad, good)):
        with pytest.raises(Refusal):
            policy.accept(note + "".join(line + "\n" for line in lines))
    # The log's own signature: the same rule.
    sig = note.rstrip("\n").rsplit("\n", 1)[1]
    lname, lblob = sig[2:].split(" ")
    lraw = bytearray(base64.b64decode(lblob))
    lraw[-1] ^= 1
    corrupt = f"\u2014 {lname} {base64.b64encode(bytes(lraw)).decode()}\n"
    for doubled in (note + corrupt, note.replace(sig + "\n", corrupt + sig + "\n")):
        with pytest.raises(Refusal):
            log.verifier.verify(doubled)


def test_a_witness_that_is_down_is_said_once_in_a_short_line_not_a_traceback_every_second(witnessed, caplog):
    import logging

    app, witnesses = witnessed
    svc = app.extensions["gateway"]
    witnesses[1].stop()
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        for _ in range(3):
            _grow(app, 1)
            svc.witnesses.publish()
    said = [r for r in caplog.records if "witness.test/w2" in r.getMessage()]
    assert len(said) == 1 and not said[0].exc_info, [r.getMessage() for r in said]
    with svc.db.read() as conn:
        problem = {w.name: w.problem for w in svc.witnesses.status(conn)}["witness.test/w2"]
    assert problem.startswith(f"unreachable at http://127.0.0.1:{witnesses[1].port}") and "refused" in problem


def test_a_key_of_the_wrong_kind_is_named_for_what_it_is():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.audit.checkpoint import NoteSigner, NoteVerifier
    from gateway.policy import Refusal
    from gateway.witness.cosignature import CosignatureSigner, CosignatureVerifier

    log = NoteSigner("gateway.test/audit", Ed25519PrivateKey.generate()).vkey
    witness = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate()).vkey
    with pytest.raises(Refusal, match=r"this is a witness's cosigning key .*, not a log checkpoint key"):
        NoteVerifier.parse(witness)
    with pytest.raises(Refusal, match=r"this is a log's checkpoint key .*gateway audit vkey.*, not a witness"):
        CosignatureVerifier.parse(log)


def test_receipts_evidence_and_exports_handed_out_right_after_activity_meet_the_quorum(witnessed, tmp_path, dev_pki):
    """Newcomer finding: a receipt downloaded right after a document was sent failed --policy."""
    from gateway.audit.witness_policy import WitnessPolicy
    from gateway.trust.evidence import verify_package
    from tests.support import HCM, Q4, GatewayClient, sample

    app, witnesses = witnessed
    svc = app.extensions["gateway"]
    policy = WitnessPolicy.load(_policy(tmp_path, app, witnesses, "group both all w1 w2\nquorum both"))
    sender = GatewayClient(app.test_client(), dev_pki.agencies[HCM])
    doc = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    assert svc.timestamper.run_once() >= 1
    receipt = sender.get(f"/v1/documents/{doc}/receipt").get_json()
    from gateway.audit.receipt import verify_receipt

    report = verify_receipt(receipt, None, policy)
    assert report["verdict"] == "valid" and set(report["cosigned_by"]) == {"w1", "w2"}, report
    package = GatewayClient(app.test_client(), dev_pki.agencies[Q4]).get(f"/v1/documents/{doc}/evidence")
    assert package.status_code == 200, package.get_json()
    checked = verify_package(
        package.data, anchors=[dev_pki.ca.cert], gateway_certs=list(svc.keys.seal_chain), policy=policy
    )
    assert checked["verdict"] == "valid" and set(checked["audit"]["cosigned_by"]) == {"w1", "w2"}, checked
    # One witness away: what is handed out now says the quorum is not met, in every verifier.
    witnesses[1].stop()
    sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024/", b"1026/")))
    late = sender.get(f"/v1/documents/{doc}/receipt").get_json()
    assert verify_receipt(late, None, policy)["code"] == "quorum-not-met"
    package = GatewayClient(app.test_client(), dev_pki.agencies[Q4]).get(f"/v1/documents/{doc}/evidence")
    refused = verify_package(
        package.data, anchors=[dev_pki.ca.cert], gateway_certs=list(svc.keys.seal_chain), policy=policy
    )
    assert refused["verdict"] == "invalid" and refused["code"] == "quorum-not-met", refused


def test_the_workbench_checkpoint_page_requires_the_configured_quorum(witnessed, tmp_path, dev_pki, sqlite_url):
    from tests.support import sign_in_workbench

    app, witnesses = witnessed
    svc = app.extensions["gateway"]
    _grow(app, 2)
    svc.witnesses.publish()
    path = _policy(tmp_path, app, witnesses, "group both all w1 w2\nquorum both")
    unpolicied = app.test_client()
    sign_in_workbench(unpolicied, svc)
    page = unpolicied.get("/audit/checkpoint").get_data(as_text=True)
    assert 'id="witness-status" class="warn"' in page and "w1" in page and "GATEWAY_WITNESS_POLICY" in page

    from gateway.audit.witness_policy import WitnessPolicy

    svc.witness_policy = WitnessPolicy.load(path)
    page = unpolicied.get("/audit/checkpoint").get_data(as_text=True)
    assert 'id="witness-status" class="ok"' in page and "w1, w2" in page, page
    assert page.count("— witness.test/w") == 2  # the note shown carries both cosignature lines
    witnesses[1].stop()
    _grow(app, 1)
    svc.witnesses.publish()
    page = unpolicied.get("/audit/checkpoint").get_data(as_text=True)
    assert 'id="witness-status" class="bad"' in page and "quorum" in page, page
