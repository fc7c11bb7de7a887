"""`gateway verify` cannot be fooled: the seal is pinned to the gateway's certificate, a sender cannot
seal its own document, and the document's signer is bound to its From agency."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest

from gateway.documents.offline import verify_offline
from gateway.documents.seal import SealFacts, build_seal
from gateway.trust import pki
from tests.support import HCM, NOIVU, Q4, sample


@pytest.fixture
def document(dev_pki) -> bytes:
    return dev_pki.agencies[HCM].sign(sample("cong-van.edxml"))


def facts_for(document: bytes, signer_fp: str, sender: str = HCM) -> SealFacts:
    return SealFacts(
        gateway="http://gateway.test",
        document_uuid="7c1d2c1e-0000-4000-8000-000000000001",
        kind="document",
        document_id="000.00.00.H29,2020/03/05,1024/UBND-VX",
        sha256=hashlib.sha256(document).hexdigest(),
        size=len(document),
        sender=sender,
        recipients=(Q4, NOIVU),
        signer_certificate_sha256=signer_fp,
        received_at=datetime.now(UTC),
        audit_index=1,
    )


def gateway_seal(dev_pki, document: bytes) -> bytes:
    key = pki.load_private_key(dev_pki.keys_dir / "gateway-seal.key")
    chain = pki.load_certificates(dev_pki.keys_dir / "gateway-seal.crt")
    signer = pki.fingerprint(dev_pki.agencies[HCM].signing.cert)
    return build_seal(facts_for(document, signer), key, chain)


def seal_chain(dev_pki):
    return pki.load_certificates(dev_pki.keys_dir / "gateway-seal.crt")


def test_a_genuine_seal_verifies_when_the_gateway_certificate_is_pinned(dev_pki, document):
    report = verify_offline(
        document, [dev_pki.ca.cert], seal=gateway_seal(dev_pki, document), gateway_certs=seal_chain(dev_pki)
    )
    assert report["verdict"] == "valid" and report["bound_by"] == "gateway seal", (
        report.get("code"),
        report.get("reason"),
    )


def test_a_seal_is_not_checked_against_its_own_certificate(dev_pki, document):
    report = verify_offline(document, [dev_pki.ca.cert], seal=gateway_seal(dev_pki, document))
    assert report["code"] == "seal-unpinned"


def test_a_seal_forged_by_the_sending_agency_is_refused(dev_pki, document):
    sender = dev_pki.agencies[HCM]
    forged = build_seal(
        facts_for(document, pki.fingerprint(sender.signing.cert)), sender.signing.key, [sender.signing.cert]
    )
    report = verify_offline(document, [dev_pki.ca.cert], seal=forged, gateway_certs=seal_chain(dev_pki))
    assert report["verdict"] == "invalid" and report["code"] == "seal-forged", report
    # even if a careless recipient "pins" whatever certificate the seal carries, the self-seal is refused
    report = verify_offline(document, [dev_pki.ca.cert], seal=forged, gateway_certs=[sender.signing.cert])
    assert report["code"] == "seal-forged", report


def test_a_seal_by_another_agency_is_refused(dev_pki, document):
    other = dev_pki.agencies[Q4]
    forged = build_seal(
        facts_for(document, pki.fingerprint(dev_pki.agencies[HCM].signing.cert)),
        other.signing.key,
        [other.signing.cert],
    )
    report = verify_offline(document, [dev_pki.ca.cert], seal=forged, gateway_certs=seal_chain(dev_pki))
    assert report["code"] == "seal-forged", report


def test_a_document_signed_by_another_agency_than_its_from_is_refused(dev_pki):
    """From says HCM; Q4's key signed it.  The seal binds HCM to HCM's certificate, so this cannot pass."""
    wrong = dev_pki.agencies[Q4].sign(sample("cong-van.edxml"))
    seal = gateway_seal(dev_pki, wrong)  # a seal naming HCM's certificate as the signer
    report = verify_offline(wrong, [dev_pki.ca.cert], seal=seal, gateway_certs=seal_chain(dev_pki))
    assert report["code"] == "seal-mismatch", report
    report = verify_offline(wrong, [dev_pki.ca.cert], sender_certs=[dev_pki.agencies[HCM].signing.cert])
    assert report["code"] == "certificate-not-registered", report
    report = verify_offline(wrong, [dev_pki.ca.cert])
    assert report["code"] == "sender-unbound" and "--sender-cert" in report["reason"], report


def test_a_document_verified_without_binding_says_who_signed_but_not_valid(dev_pki, document):
    report = verify_offline(document, [dev_pki.ca.cert])
    assert report["verdict"] == "invalid" and report["signer_sha256"] == pki.fingerprint(
        dev_pki.agencies[HCM].signing.cert
    )


def test_a_planted_gateway_certificate_that_is_the_senders_own_is_refused(dev_pki):
    """The sender seals its own document, strips KeyInfo, and leaves its certificate as gateway-seal.pem."""
    sender = dev_pki.agencies[HCM]
    document = sender.sign(sample("cong-van.edxml"))
    forged = build_seal(
        facts_for(document, pki.fingerprint(sender.signing.cert)), sender.signing.key, [sender.signing.cert]
    )
    forged = re.sub(rb"<ds:KeyInfo>.*?</ds:KeyInfo>", b"", forged, flags=re.S)
    report = verify_offline(document, [dev_pki.ca.cert], seal=forged, gateway_certs=[sender.signing.cert])
    assert report["code"] == "seal-forged", report
