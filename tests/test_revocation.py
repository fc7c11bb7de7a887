"""Revocation on every verification: refused when revoked, cached within the freshness window,
refreshed in the background, CRL as fallback, and a clear policy once status cannot be had.

Status comes from real HTTP servers on loopback (the development CA's responder and CRL, or a
private server a test can take down), never from a stand-in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from gateway.documents.signing import sign_edxml
from gateway.keys import DevStatusUrls
from gateway.policy import Refusal
from gateway.store.tables import documents
from gateway.trust import pki
from gateway.trust.dev_pki import build_dev_crl
from gateway.trust.revocation import RevocationChecker, RevocationSettings
from tests.pki_server import LoopbackServer, dev_pki_app
from tests.support import HCM, sample
from tests.test_refusals import assert_refused


@pytest.fixture
def private_status(dev_pki):
    """A second server for the same development CA that a test may stop, restart or make lie."""
    from gateway.trust.dev_tsa import DevTsa

    server = LoopbackServer()
    tsa = pki.Issued(
        pki.load_private_key(dev_pki.keys_dir / "dev-tsa.key"),
        pki.load_certificates(dev_pki.keys_dir / "dev-tsa.crt")[0],
    )
    server.app = dev_pki_app(dev_pki.ca, dev_pki.revocations, DevTsa(tsa, [dev_pki.ca.cert]))
    server.serve(server.app)
    yield server
    server.stop()


def register(svc, cert) -> None:
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, cert, svc.keys.trust)


def signed_with(issued, number: int) -> bytes:
    data = sample("cong-van.edxml").replace(b"1024", str(number).encode())
    return sign_edxml(data, issued.key, [issued.cert])


def test_revoked_signer_is_refused_naming_time_and_reason_and_audited(agency, svc, dev_pki):
    signer = dev_pki.issue(HCM, "UBND (revoked)")
    register(svc, signer.cert)
    sender = agency(HCM)
    assert sender.submit(signed_with(signer, 2001)).status_code == 202
    dev_pki.revocations.revoke(signer.cert)  # the demo's `gateway keys revoke`: seen by the next verification
    assert_refused(svc, lambda: sender.submit(signed_with(signer, 2002)), 422, "certificate-revoked")
    detail = sender.submit(signed_with(signer, 2003)).get_json()["detail"]
    assert "keyCompromise" in detail and "revoked at" in detail and "OCSP" in detail


def test_accepted_document_keeps_the_exact_ocsp_response_once(agency, svc, dev_pki):
    sender = agency(HCM)
    for number in (3001, 3002):
        assert (
            sender.submit(sender.keys.sign(sample("cong-van.edxml").replace(b"1024", str(number).encode()))).status_code
            == 202
        )
    with svc.db.read() as conn:
        kept = conn.execute(sa.select(documents.c.signer_status).where(documents.c.sender == HCM)).scalars().all()
        evidence = conn.execute(sa.text("SELECT kind, count(*) FROM trust_evidence GROUP BY kind")).all()
    assert len(set(kept)) == 1 and kept[0] is not None  # content-addressed: both documents cite one response
    assert dict((k, n) for k, n in evidence)["ocsp"] == 1


def test_crl_is_the_fallback_when_the_certificate_names_no_responder(agency, svc, dev_pki):
    signer = dev_pki.issue(HCM, "UBND (CRL only)", ocsp_url=None)
    register(svc, signer.cert)
    accepted = agency(HCM).submit(signed_with(signer, 4001))
    assert accepted.status_code == 202, accepted.get_json()
    with svc.db.read() as conn:
        kind = conn.execute(
            sa.text(
                "SELECT e.kind FROM documents d JOIN trust_evidence e ON e.sha256 = d.signer_status WHERE d.id = :i"
            ),
            {"i": accepted.get_json()["id"]},
        ).scalar_one()
    assert kind == "crl"


def test_no_status_source_at_all_is_refused_by_default(agency, svc, dev_pki):
    signer = dev_pki.issue(HCM, "UBND (no AIA, no CDP)", ocsp_url=None, crl_url=None)
    register(svc, signer.cert)
    sender = agency(HCM)
    assert_refused(svc, lambda: sender.submit(signed_with(signer, 5001)), 422, "certificate-status-unknown")


def test_unknown_status_can_be_accepted_and_flagged_by_configuration(database_url, dev_pki):
    from flask import Flask

    from gateway import create_app
    from tests.conftest import make_config, register_agencies
    from tests.support import GatewayClient

    app: Flask = create_app(make_config(database_url, dev_pki, revocation_unknown="flag"))
    svc = app.extensions["gateway"]
    register_agencies(svc, dev_pki)
    signer = dev_pki.issue(HCM, "UBND (no status source)", ocsp_url=None, crl_url=None)
    register(svc, signer.cert)
    accepted = GatewayClient(app.test_client(), dev_pki.agencies[HCM]).submit(signed_with(signer, 5101))
    assert accepted.status_code == 202, accepted.get_json()
    with svc.db.read() as conn:
        flag = conn.execute(sa.select(documents.c.status_flag).where(documents.c.id == accepted.get_json()["id"]))
        assert "cannot be established" in flag.scalar_one()
    svc.db.dispose()


# --- the cache, against a server that goes away -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def checker(clock: Clock, **settings: object) -> RevocationChecker:
    return RevocationChecker(RevocationSettings(**settings), clock=clock)  # type: ignore[arg-type]


def test_responder_outage_within_the_window_changes_nothing(dev_pki, private_status):
    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "outage", ocsp_url=urls.ocsp, crl_url=urls.crl)
    clock = Clock()
    check = checker(clock, freshness_seconds=3600, refresh_seconds=1200)
    first = check.check(signer.cert, dev_pki.ca.cert)
    private_status.serve(None)  # the responder and CRL answer 503 from now on
    clock.now += timedelta(seconds=3500)
    assert check.check(signer.cert, dev_pki.ca.cert).status == first.status  # stale-while-refreshing
    check.wait_idle()
    clock.now += timedelta(seconds=200)  # past the window: nothing fresh to rely on
    with pytest.raises(Refusal) as refused:
        check.check(signer.cert, dev_pki.ca.cert)
    assert refused.value.code == "certificate-status-unknown"
    private_status.serve(private_status.app)  # back: the next lookup after the retry pause succeeds
    clock.now += timedelta(seconds=31)
    assert check.check(signer.cert, dev_pki.ca.cert).status.state == "good"


def test_status_is_refreshed_in_the_background_after_the_interval(dev_pki, private_status):
    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "refresh", ocsp_url=urls.ocsp)
    clock = Clock()
    check = checker(clock, freshness_seconds=3600, refresh_seconds=1200)
    check.check(signer.cert, dev_pki.ca.cert)
    lookups = check.lookups
    clock.now += timedelta(seconds=600)
    check.check(signer.cert, dev_pki.ca.cert)
    assert check.lookups == lookups  # warm cache: no call on the request path
    dev_pki.revocations.revoke(signer.cert, at=datetime.now(UTC))
    clock.now += timedelta(seconds=700)  # past the refresh interval: this answer is cached, a refresh starts
    check.check(signer.cert, dev_pki.ca.cert)
    check.wait_idle()
    with pytest.raises(Refusal) as refused:
        check.check(signer.cert, dev_pki.ca.cert)
    assert refused.value.code == "certificate-revoked"


def test_a_forged_ocsp_answer_is_refused_under_its_own_code_when_no_crl_helps(dev_pki, private_status):
    from flask import Flask, Response

    from gateway.trust.dev_pki import DevOcspResponder, DevRevocations

    impostor = pki.make_ca("Impostor CA")
    lying = Flask("lying-responder")
    responder = DevOcspResponder(impostor, DevRevocations(dev_pki.keys_dir / "nothing-revoked.json"))

    @lying.post("/dev-pki/ocsp")
    def answer() -> Response:
        from flask import request

        return Response(responder.respond(request.get_data()), mimetype="application/ocsp-response")

    private_status.serve(lying)
    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "forged", ocsp_url=urls.ocsp, crl_url=urls.crl)  # the CRL path answers 404
    with pytest.raises(Refusal) as refused:
        checker(Clock()).check(signer.cert, dev_pki.ca.cert)
    assert refused.value.code == "ocsp-unauthorized-responder"


def test_crl_served_by_the_dev_ca_is_fresh_and_lists_revocations(dev_pki):
    from cryptography import x509

    signer = dev_pki.issue(HCM, "listed")
    dev_pki.revocations.revoke(signer.cert)
    crl = x509.load_der_x509_crl(requests.get(dev_pki.status.crl, timeout=5).content)
    assert crl.get_revoked_certificate_by_serial_number(signer.cert.serial_number) is not None
    assert build_dev_crl(dev_pki.ca, dev_pki.revocations, now=datetime.now(UTC))


def test_a_revoked_certificate_stays_refused_past_the_window_even_under_the_flag_policy(dev_pki, private_status):
    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "revoked for good", ocsp_url=urls.ocsp, crl_url=urls.crl)
    dev_pki.revocations.revoke(signer.cert)
    clock = Clock()
    check = checker(clock, unknown_policy="flag")
    with pytest.raises(Refusal) as first:
        check.check(signer.cert, dev_pki.ca.cert)
    private_status.serve(None)  # the sources go away, and the window passes
    clock.now += timedelta(seconds=7200)
    with pytest.raises(Refusal) as later:
        check.check(signer.cert, dev_pki.ca.cert)
    assert first.value.code == later.value.code == "certificate-revoked"


def test_a_crl_is_cached_for_its_publication_period_not_refetched_per_document(dev_pki, private_status):
    from flask import Flask, Response

    old_crl = build_dev_crl(
        dev_pki.ca, dev_pki.revocations, now=datetime.now(UTC) - timedelta(hours=2), validity=timedelta(days=1)
    )
    app = Flask("old-crl")

    @app.get("/dev-pki/crl")
    def crl() -> Response:
        return Response(old_crl, mimetype="application/pkix-crl")

    private_status.serve(app)
    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "crl cached", ocsp_url=None, crl_url=urls.crl)
    check = checker(Clock())
    for _ in range(5):
        assert check.check(signer.cert, dev_pki.ca.cert).status.source == "crl"
    assert check.lookups == 1


def test_a_revoked_subordinate_ca_revokes_the_signers_it_issued(dev_pki, tmp_path):
    """Root (anchor) → subordinate CA → signer: the subordinate is asked about at the root's responder,
    the signer at the subordinate's, and revoking the subordinate refuses the signer's documents."""
    from flask import Flask, Response, request

    from gateway.documents import xmlsafe
    from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
    from gateway.services import EDXML_SIGNATURE_PARENT
    from gateway.trust.chain import TrustStore
    from gateway.trust.dev_pki import DevOcspResponder, DevRevocations

    server = LoopbackServer()
    root = dev_pki.status
    subordinate = pki.make_ca("Subordinate CA (test)", issuer=dev_pki.ca, ocsp_url=root.ocsp, crl_url=root.crl)
    responder = DevOcspResponder(subordinate, DevRevocations(tmp_path / "subordinate-revocations.json"))
    app = Flask("subordinate-responder")

    @app.post("/ocsp")
    def answer() -> Response:
        return Response(responder.respond(request.get_data()), mimetype="application/ocsp-response")

    server.serve(app)
    try:
        signer = pki.issue_signing_certificate(subordinate, "UBND via subordinate", HCM, ocsp_url=server.base + "/ocsp")
        signed = sign_edxml(sample("cong-van.edxml"), signer.key, [signer.cert, subordinate.cert])
        verifier = EnvelopedSignatureVerifier(
            TrustStore([dev_pki.ca.cert]),
            SignatureProfile(),
            EDXML_SIGNATURE_PARENT,
            revocation=checker(Clock()),
        )
        assert verifier.verify(signed, xmlsafe.parse(signed), [signer.cert]).revocation.status.state == "good"
        dev_pki.revocations.revoke(subordinate.cert)
        again = EnvelopedSignatureVerifier(
            TrustStore([dev_pki.ca.cert]), SignatureProfile(), EDXML_SIGNATURE_PARENT, revocation=checker(Clock())
        )
        with pytest.raises(Refusal) as refused:
            again.verify(signed, xmlsafe.parse(signed), [signer.cert])
        assert refused.value.code == "certificate-revoked" and "Subordinate CA" in refused.value.reason
    finally:
        server.stop()


def test_a_signer_under_a_subordinate_ca_registers_with_the_chain_in_its_file(svc, dev_pki):
    from gateway.routing.registry import split_chain

    subordinate = pki.make_ca("Licensed CA (test)", issuer=dev_pki.ca)
    signer = pki.issue_signing_certificate(subordinate, "UBND via licensed CA", HCM)
    signers, intermediates = split_chain([signer.cert, subordinate.cert])
    assert signers == [signer.cert] and intermediates == [subordinate.cert]
    with svc.db.write() as conn:
        svc.registry.add_certificate(conn, HCM, signer.cert, svc.keys.trust, intermediates=intermediates)
        assert signer.cert in svc.registry.signing_certificates(conn, HCM)


def test_a_certificate_on_hold_is_accepted_again_once_released(dev_pki, private_status):
    from cryptography import x509

    urls = DevStatusUrls(private_status.base)
    signer = dev_pki.issue(HCM, "on hold", ocsp_url=urls.ocsp)
    held = dev_pki.keys_dir / "held.json"
    from gateway.trust.dev_pki import DevRevocations

    revocations = DevRevocations(held)
    revocations.revoke(signer.cert, reason=x509.ReasonFlags.certificate_hold)
    from gateway.trust.dev_tsa import DevTsa

    tsa = pki.Issued(
        pki.load_private_key(dev_pki.keys_dir / "dev-tsa.key"),
        pki.load_certificates(dev_pki.keys_dir / "dev-tsa.crt")[0],
    )
    private_status.serve(dev_pki_app(dev_pki.ca, revocations, DevTsa(tsa, [dev_pki.ca.cert])))
    clock = Clock()
    check = checker(clock)
    with pytest.raises(Refusal):
        check.check(signer.cert, dev_pki.ca.cert)
    held.unlink()  # the CA releases the hold
    private_status.serve(private_status.app)
    clock.now += timedelta(seconds=3601)
    assert check.check(signer.cert, dev_pki.ca.cert).status.state == "good"
