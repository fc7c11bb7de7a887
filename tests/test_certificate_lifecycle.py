"""Certificate lifecycle per agency: renewal, removal, client-key rotation with an overlap, expiry
warnings — each audited — and documents in flight staying provable across a rotation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from gateway.cli import main
from gateway.documents.signing import sign_edxml
from gateway.trust import pki
from gateway.trust.evidence import verify_package
from tests.support import HCM, Q4, GatewayClient, sample


def signed_with(issued, number: int) -> bytes:
    return sign_edxml(sample("cong-van.edxml").replace(b"1024", str(number).encode()), issued.key, [issued.cert])


def audit_events(svc) -> list[str]:
    import sqlalchemy as sa

    from gateway.store.tables import audit_search

    with svc.db.read() as conn:
        return list(conn.execute(sa.select(audit_search.c.event).order_by(audit_search.c.idx)).scalars())


def test_rotation_with_documents_in_flight(agency, svc, dev_pki):
    old, new = dev_pki.issue(HCM, "UBND 2025"), dev_pki.issue(HCM, "UBND 2026")
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, old.cert, svc.keys.trust)
    sender = agency(HCM)
    in_flight = sender.submit(signed_with(old, 7001))
    assert in_flight.status_code == 202
    svc.timestamper.run_once()
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, new.cert, svc.keys.trust)
        svc.registry.remove_certificate(conn, HCM, pki.fingerprint(old.cert)[:12])
    refused = sender.submit(signed_with(old, 7002))
    assert refused.status_code == 422 and refused.get_json()["code"] == "certificate-not-registered"
    assert "was removed" in refused.get_json()["detail"]
    assert sender.submit(signed_with(new, 7003)).status_code == 202
    # the document signed before the rotation is still delivered and its evidence still verifies
    package = agency(Q4).get(f"/v1/documents/{in_flight.get_json()['id']}/evidence").data
    report = verify_package(
        package, anchors=[dev_pki.ca.cert], gateway_certs=list(svc.keys.seal_chain), vkey=svc.checkpoints.vkey
    )
    assert report["verdict"] == "valid", report
    events = audit_events(svc)
    assert events.count("agency.certificate-added") >= 2 and "agency.certificate-removed" in events


def test_newest_certificate_is_a_candidate_even_after_many_renewals(agency, svc, dev_pki):
    with svc.db.write() as conn:
        for i in range(12):
            svc.registry.add_certificate(conn, HCM, dev_pki.issue(HCM, f"renewal {i}").cert, svc.keys.trust)
        newest = dev_pki.issue(HCM, "newest")
        svc.registry.add_certificate(conn, HCM, newest.cert, svc.keys.trust)
        candidates = svc.registry.signing_certificates(conn, HCM)
    assert candidates[0] == newest.cert
    assert agency(HCM).submit(signed_with(newest, 7101)).status_code == 202
    oldest_current = dev_pki.agencies[HCM].signing  # registered first, still valid: not pushed out by renewals
    assert agency(HCM).submit(signed_with(oldest_current, 7102)).status_code == 202


def test_client_key_rotation_keeps_the_old_key_during_the_overlap_only(app, svc, dev_pki):
    keys = dev_pki.agencies[Q4]
    old_client = GatewayClient(app.test_client(), keys)
    new_key = pki.generate_key("ec")
    with svc.db.write() as conn:
        svc.registry.rotate_client_key(conn, Q4, pki.public_pem(new_key), timedelta(hours=1))
    assert old_client.token()  # still accepted in the overlap
    from tests.support import AgencyKeys

    assert GatewayClient(app.test_client(), AgencyKeys(Q4, keys.signing, new_key)).token()
    with svc.db.write() as conn:  # rotate again with no overlap: only the newest key works
        newer = pki.generate_key("ec")
        svc.registry.rotate_client_key(conn, Q4, pki.public_pem(newer), timedelta(0))
    refused = GatewayClient(app.test_client(), AgencyKeys(Q4, keys.signing, new_key))
    response = refused.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": AgencyKeys(Q4, keys.signing, new_key).assertion(),
        },
    )
    assert response.status_code == 401 and response.get_json()["code"] == "invalid-client"
    assert "agency.client-key-rotated" in audit_events(svc)


def test_expiring_certificates_show_in_readiness_and_metrics(app, svc, dev_pki):
    soon = dev_pki.issue(HCM, "expires soon", days=10)
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, soon.cert, svc.keys.trust)
    ready = app.test_client().get("/readyz").get_json()
    assert [c["sha256"] for c in ready["details"]["certificates_expiring"]] == [pki.fingerprint(soon.cert)]
    assert "gateway_certificates_expiring 1.0" in app.test_client().get("/metrics").get_data(as_text=True)


def test_cli_cert_add_list_remove_and_client_key_rotate(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("GATEWAY_REVOCATION_TIMEOUT_SECONDS", "1")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    assert run("init", "--demo")[0] == 0
    from gateway.keys import load_development_ca

    ca = load_development_ca(tmp_path / "keys")
    renewal = pki.issue_signing_certificate(ca, "UBND renewal", HCM, days=20)
    pki.save_certificate(renewal.cert, tmp_path / "renewal.crt")
    code, out = run("agency", "cert", "add", HCM, "--cert", str(tmp_path / "renewal.crt"))
    assert code == 0 and pki.fingerprint(renewal.cert) in out
    code, out = run("agency", "cert", "list", HCM, "--json")
    listed = json.loads(out)
    assert code == 0 and listed[0]["sha256"] == pki.fingerprint(renewal.cert) and len(listed) == 2
    assert "status" in listed[0]
    code, out = run("agency", "list", "--json")
    assert (
        pki.fingerprint(renewal.cert)[:12]
        in next(a for a in json.loads(out) if a["code"] == HCM)["expiring_certificates"]
    )
    code, out = run("agency", "cert", "remove", HCM, pki.fingerprint(renewal.cert)[:10])
    assert code == 0 and "removed" in out
    code, out = run("agency", "cert", "remove", HCM, "deadbeef00")
    assert code != 0 and "gateway agency cert list" in out
    new_key = pki.generate_key("ec")
    (tmp_path / "new.pub").write_text(pki.public_pem(new_key))
    code, out = run("agency", "client-key", "rotate", HCM, "--client-key", str(tmp_path / "new.pub"))
    assert code == 0 and "previous key is accepted until" in out
    code, out = run("keys", "revoke", Q4, "--json")
    assert code == 0 and json.loads(out)["reason"] == "keyCompromise"
    assert datetime.fromisoformat(json.loads(out)["revoked_at"]) <= datetime.now(UTC)
