"""Evidence packages: complete, verifiable offline in a fresh process at the timestamped signing time,
and every tampered part refused with a reason naming the part."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gateway.trust import pki
from gateway.trust.evidence import MANIFEST, verify_package
from gateway.trust.evidence_report import render
from tests.support import HCM, NOIVU, Q4, Q11, sample


def accepted_package(svc, agency) -> tuple[str, bytes]:
    sender = agency(HCM)
    accepted = sender.submit(sender.keys.sign(sample("cong-van.edxml")))
    assert accepted.status_code == 202, accepted.get_json()
    doc_id = accepted.get_json()["id"]
    early = agency(Q4).get(f"/v1/documents/{doc_id}/evidence")
    assert early.status_code == 409 and early.get_json()["code"] == "evidence-not-ready"
    assert svc.timestamper.run_once() >= 1
    package = agency(Q4).get(f"/v1/documents/{doc_id}/evidence")
    assert package.status_code == 200, package.get_json()
    assert package.mimetype == "application/vnd.etsi.asic-e+zip"
    return doc_id, package.data


def check(svc, dev_pki, data: bytes) -> dict:
    return verify_package(
        data, anchors=[dev_pki.ca.cert], gateway_certs=list(svc.keys.seal_chain), vkey=svc.checkpoints.vkey
    )


def test_evidence_package_verifies_offline_with_pinned_keys(agency, svc, dev_pki):
    doc_id, data = accepted_package(svc, agency)
    report = check(svc, dev_pki, data)
    assert report["verdict"] == "valid", report
    assert report["document"] == doc_id and report["sender"] == HCM
    assert report["revocation"]["state"] == "good" and report["revocation"]["source"] == "ocsp"
    assert report["recipients"] == [Q4, NOIVU] and report["audit"]["entries"]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[0] == "mimetype"  # ASiC: first, stored
    assert {"document.edxml", "seal.xml", "revocation/status.der", "timestamp/token.tsr", "receipt.json"} <= set(names)
    text = render(report)
    assert text.startswith("Kết quả: HỢP LỆ") and "Người ký" in text and "Thời điểm ký" in text


def test_only_sender_recipients_and_auditors_get_the_package(agency, svc):
    sender = agency(HCM)
    doc_id = sender.submit(sender.keys.sign(sample("cong-van.edxml"))).get_json()["id"]
    svc.timestamper.run_once()
    assert sender.get(f"/v1/documents/{doc_id}/evidence").status_code == 200
    assert agency(Q11).get(f"/v1/documents/{doc_id}/evidence").status_code == 404


def _rewrite(data: bytes, name: str, change) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                content = change(content)
            target.writestr(info, content)
    return out.getvalue()


def _flip_last(content: bytes) -> bytes:
    return content[:-40] + bytes([content[-40] ^ 1]) + content[-39:]


def _rehash(data: bytes, name: str, change) -> bytes:
    """Change one part and fix the manifest, so the part's own check has to catch it."""
    import hashlib

    changed = _rewrite(data, name, change)
    new = zipfile.ZipFile(io.BytesIO(changed)).read(name)

    def manifest(content: bytes) -> bytes:
        doc = json.loads(content)
        doc["files"][name] = hashlib.sha256(new).hexdigest()
        return json.dumps(doc).encode()

    return _rewrite(changed, MANIFEST, manifest)


@pytest.mark.parametrize(
    ("name", "change", "part", "codes"),
    [
        (
            "document.edxml",
            lambda c: c.replace("Quận 4".encode(), "Quận 9".encode()),
            "document.edxml",
            {"signature-invalid"},
        ),
        ("seal.xml", lambda c: c.replace(b"<seal:Size>", b"<seal:Size>1"), "seal.xml", {"signature-invalid"}),
        ("timestamp/token.tsr", _flip_last, "timestamp/token.tsr", {"timestamp-signature", "timestamp-malformed"}),
        ("revocation/status.der", _flip_last, "revocation/status.der", {"evidence-status"}),  # the seal names it
        (
            "receipt.json",
            lambda c: c.replace(b'"proof": [\n    "', b'"proof": [\n    "A'),
            "receipt.json",
            {"receipt-invalid"},
        ),
    ],
    ids=["document", "seal", "timestamp", "ocsp-response", "receipt"],
)
def test_each_tampered_part_is_refused_naming_the_part(agency, svc, dev_pki, name, change, part, codes):
    _, data = accepted_package(svc, agency)
    report = check(svc, dev_pki, _rehash(data, name, change))
    assert report["verdict"] == "invalid" and report["part"] == part and report["code"] in codes, report


def test_a_part_changed_without_fixing_the_manifest_is_named(agency, svc, dev_pki):
    _, data = accepted_package(svc, agency)
    report = check(svc, dev_pki, _rewrite(data, "seal.xml", lambda c: c + b" "))
    assert report["part"] == "seal.xml" and report["code"] == "evidence-manifest"


def test_a_package_whose_seal_is_not_the_pinned_gateways_is_refused(agency, svc, dev_pki):
    _, data = accepted_package(svc, agency)
    other = pki.issue_signing_certificate(dev_pki.ca, "Not the gateway", "x")
    report = verify_package(data, anchors=[dev_pki.ca.cert], gateway_certs=[other.cert], vkey=svc.checkpoints.vkey)
    assert report["part"] == "seal.xml" and report["code"] == "seal-forged"


def test_package_verifies_in_a_fresh_process_after_the_signer_is_revoked(agency, svc, dev_pki, tmp_path: Path):
    """Valid at signing time stays valid: revoking (or expiry) afterwards changes nothing offline."""
    signer = dev_pki.issue(HCM, "UBND (to be revoked)")
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, signer.cert, svc.keys.trust)
    sender = agency(HCM)
    from gateway.documents.signing import sign_edxml

    accepted = sender.submit(sign_edxml(sample("cong-van.edxml"), signer.key, [signer.cert]))
    assert accepted.status_code == 202, accepted.get_json()
    doc_id = accepted.get_json()["id"]
    svc.timestamper.run_once()
    package = tmp_path / "evidence.asice"
    package.write_bytes(agency(Q4).get(f"/v1/documents/{doc_id}/evidence").data)
    dev_pki.revocations.revoke(signer.cert)
    refused = sender.submit(sign_edxml(sample("cong-van.edxml").replace(b"1024", b"1025"), signer.key, [signer.cert]))
    assert refused.status_code == 422 and refused.get_json()["code"] == "certificate-revoked"
    assert "keyCompromise" in refused.get_json()["detail"]
    (tmp_path / "gateway-seal.pem").write_bytes(b"".join(pki.cert_pem(c).encode() for c in svc.keys.seal_chain))
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem(dev_pki.ca.cert).encode())
    command = ["verify", "--evidence", str(package), "--anchors", str(tmp_path / "ca.crt"), "--lang", "en"]
    command += ["--gateway-cert", str(tmp_path / "gateway-seal.pem")]
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *command, "--vkey", svc.checkpoints.vkey],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_KEYS_DIR": str(tmp_path / "nothing")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: VALID" in result.stdout and "valid, not revoked" in result.stdout


def _without(data: bytes, name: str, manifest_change=None) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                continue
            if info.filename == MANIFEST and manifest_change is not None:
                content = manifest_change(content)
            target.writestr(info, content)
    return out.getvalue()


def test_stripping_the_status_evidence_is_refused_because_the_seal_names_it(agency, svc, dev_pki):
    _, data = accepted_package(svc, agency)

    def forget(content: bytes) -> bytes:
        doc = json.loads(content)
        doc["files"].pop("revocation/status.der")
        doc["status"] = {"source": None, "flag": None}
        return json.dumps(doc).encode()

    report = check(svc, dev_pki, _without(data, "revocation/status.der", forget))
    assert report["verdict"] == "invalid" and report["code"] == "evidence-incomplete", report


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_two_entries_with_one_name_are_refused(agency, svc, dev_pki):
    _, data = accepted_package(svc, agency)
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("document.edxml", b"<other/>")
    report = check(svc, dev_pki, buffer.getvalue())
    assert report["code"] == "evidence-malformed" and "same name" in report["reason"]


def test_an_unreadable_signer_chain_is_a_report_naming_the_part_not_a_traceback(agency, svc, dev_pki):
    _, data = accepted_package(svc, agency)
    broken = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    report = check(svc, dev_pki, _rehash(data, "certificates/signer-chain.pem", lambda _c: broken))
    assert report["verdict"] == "invalid" and report["part"] == "certificates/signer-chain.pem", report


def test_an_error_answer_saved_as_a_package_says_what_it_is(svc, dev_pki):
    body = json.dumps({"code": "invalid-token", "detail": "token has expired"}).encode()
    report = check(svc, dev_pki, body)
    assert report["code"] == "evidence-malformed" and "invalid-token" in report["reason"]


def test_a_status_message_has_its_own_evidence_package(agency, svc, dev_pki):
    sender, district = agency(HCM), agency(Q4)
    assert sender.submit(sender.keys.sign(sample("cong-van.edxml"))).status_code == 202
    reply = district.submit(district.keys.sign(sample("status-03.edxml")), "/v1/status")
    assert reply.status_code == 202, reply.get_json()
    svc.timestamper.run_once()
    package = sender.get(f"/v1/documents/{reply.get_json()['id']}/evidence")
    assert package.status_code == 200, package.get_json()
    report = check(svc, dev_pki, package.data)
    assert report["verdict"] == "valid" and report["sender"] == Q4, report.get("reason")


def test_the_cli_takes_the_vkey_as_a_file_and_tells_usage_mistakes_apart(agency, svc, dev_pki, tmp_path: Path):
    from click.testing import CliRunner

    from gateway.cli import main

    _, data = accepted_package(svc, agency)
    (tmp_path / "p.asice").write_bytes(data)
    (tmp_path / "seal.pem").write_text("".join(pki.cert_pem(c) for c in svc.keys.seal_chain))
    (tmp_path / "ca.crt").write_text(pki.cert_pem(dev_pki.ca.cert))
    (tmp_path / "audit.vkey").write_text(svc.checkpoints.vkey + "\n")
    base = ["verify", "--evidence", str(tmp_path / "p.asice"), "--anchors", str(tmp_path / "ca.crt")]
    pinned = [*base, "--gateway-cert", str(tmp_path / "seal.pem")]
    assert CliRunner().invoke(main, [*pinned, "--vkey", str(tmp_path / "audit.vkey")]).exit_code == 0
    assert CliRunner().invoke(main, pinned).exit_code == 2  # usage: no --vkey
    assert CliRunner().invoke(main, [*base, "--vkey", svc.checkpoints.vkey]).exit_code == 2  # no --gateway-cert
    wrong = CliRunner().invoke(main, [*pinned, "--vkey", "not a key"])
    assert wrong.exit_code == 2 and "--vkey" in wrong.output
