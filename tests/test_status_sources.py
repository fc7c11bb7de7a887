"""OCSP and CRL status sources against real HTTP servers on loopback.

One werkzeug server per module serves ``POST /ocsp`` and ``GET /crl``; each test installs the
handlers it needs (the development responder, or one that misbehaves in a particular way) and the
client goes through :func:`gateway.fetch.fetch` exactly as in production, to the URLs in the
certificates' AIA and CDP extensions.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.fetch import Bounds
from gateway.policy import Refusal
from gateway.trust import crl, dev_pki, ocsp, pki
from gateway.trust.status import now_utc
from tests.pki_server import Handler, Reply
from tests.pki_server import RouteServer as Loopback

BOUNDS = Bounds(timeout=1.0, max_bytes=256 * 1024)
MAX_AGE = 600.0
DER = serialization.Encoding.DER


def ocsp_reply(der: bytes) -> Reply:
    return Reply(der, content_type="application/ocsp-response")


@dataclass(frozen=True)
class Pkis:
    ca: pki.Issued
    alice: pki.Issued  # issued by ca, AIA/CDP pointing at the loopback server
    bob: pki.Issued  # issued by ca too
    twin_ca: pki.Issued  # another CA with the very same subject name as ca
    outsider: pki.Issued  # issued by twin_ca
    stranger_ca: pki.Issued  # a CA with a different name


@pytest.fixture(scope="module")
def server() -> Iterator[Loopback]:
    loopback = Loopback()
    yield loopback
    loopback.close()


@pytest.fixture(scope="module")
def pkis(server: Loopback) -> Pkis:
    def signer(ca: pki.Issued, name: str) -> pki.Issued:
        key = pki.generate_key("ec")  # EC: quick to generate, and the signing key type plays no part here
        return pki.issue_signing_certificate(
            ca, name, "Agency A", key=key, ocsp_url=server.url("/ocsp"), crl_url=server.url("/crl")
        )

    ca = pki.make_ca()
    twin_ca = pki.make_ca()
    return Pkis(
        ca=ca,
        alice=signer(ca, "Alice Signer"),
        bob=signer(ca, "Bob Signer"),
        twin_ca=twin_ca,
        outsider=signer(twin_ca, "Outsider"),
        stranger_ca=pki.make_ca("Some Other Development CA"),
    )


@dataclass
class World:
    server: Loopback
    pkis: Pkis
    revocations: dev_pki.DevRevocations

    def serve_responder(self, responder: dev_pki.DevOcspResponder) -> None:
        self.server.handlers["/ocsp"] = lambda body: ocsp_reply(responder.respond(body))

    def serve_crl(self, make: Callable[[], bytes]) -> None:
        self.server.handlers["/crl"] = lambda _body: Reply(make(), content_type="application/pkix-crl")

    def query(self, subject: pki.Issued | None = None, issuer: pki.Issued | None = None, **options: Any) -> Any:
        subject = subject or self.pkis.alice
        issuer = issuer or self.pkis.ca
        url = ocsp.responder_urls(subject.cert)[0]
        arguments: dict[str, Any] = {"now": now_utc(), "max_age": MAX_AGE, "bounds": BOUNDS, **options}
        return ocsp.query(url, subject.cert, issuer.cert, **arguments)

    def fetch_crl(self, subject: pki.Issued | None = None, issuer: pki.Issued | None = None, **options: Any) -> Any:
        subject = subject or self.pkis.alice
        issuer = issuer or self.pkis.ca
        url = crl.distribution_points(subject.cert)[0]
        arguments: dict[str, Any] = {"now": now_utc(), "max_age": MAX_AGE, "bounds": BOUNDS, **options}
        return crl.fetch_crl(url, subject.cert, issuer.cert, **arguments)


@pytest.fixture
def world(server: Loopback, pkis: Pkis, tmp_path: Path) -> Iterator[World]:
    revocations = dev_pki.DevRevocations(tmp_path / "dev-revocations.json")
    world = World(server, pkis, revocations)
    world.serve_responder(dev_pki.DevOcspResponder(pkis.ca, revocations))
    world.serve_crl(lambda: dev_pki.build_dev_crl(pkis.ca, revocations, now=now_utc()))
    yield world
    server.handlers.clear()


def refusal_code(call: Callable[[], object]) -> str:
    with pytest.raises(Refusal) as caught:
        call()
    return caught.value.code


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


# --- extensions -------------------------------------------------------------------------------------


def test_status_urls_come_from_the_certificates_aia_and_cdp(world: World) -> None:
    assert ocsp.responder_urls(world.pkis.alice.cert) == [world.server.url("/ocsp")]
    assert crl.distribution_points(world.pkis.alice.cert) == [world.server.url("/crl")]
    assert ocsp.responder_urls(world.pkis.ca.cert) == []
    assert crl.distribution_points(world.pkis.ca.cert) == []


# --- OCSP: what the responder says --------------------------------------------------------------------


def test_good_certificate_is_reported_good_with_the_response_kept_as_evidence(world: World) -> None:
    before = whole_seconds(now_utc())
    status = world.query()
    assert status.state == "good"
    assert status.source == "ocsp"
    assert status.url == world.server.url("/ocsp")
    assert status.revoked_at is None and status.reason is None
    assert status.responder == world.pkis.ca.cert.subject.rfc4514_string()
    assert before <= status.this_update <= now_utc()
    assert status.next_update == status.this_update + timedelta(hours=1)
    assert status.produced_at.utcoffset() == timedelta(0)
    parsed = x509_ocsp.load_der_ocsp_response(status.evidence)
    assert parsed.serial_number == world.pkis.alice.cert.serial_number
    assert status.evidence_sha256 == hashlib.sha256(status.evidence).hexdigest()


def test_revoked_certificate_reports_its_revocation_time_and_reason(world: World) -> None:
    revoked_at = whole_seconds(now_utc() - timedelta(days=1))
    world.revocations.revoke(world.pkis.alice.cert, reason=x509.ReasonFlags.affiliation_changed, at=revoked_at)
    status = world.query()
    assert status.state == "revoked"
    assert status.revoked_at == revoked_at
    assert status.reason == "affiliationChanged"
    assert world.query(subject=world.pkis.bob).state == "good"


def test_revocation_with_unspecified_reason_reports_no_reason(world: World) -> None:
    world.revocations.revoke(world.pkis.alice.cert, reason=x509.ReasonFlags.unspecified)
    status = world.query()
    assert status.state == "revoked"
    assert status.reason is None


def test_sha1_cert_id_is_answered_in_kind_and_accepted(world: World) -> None:
    world.revocations.revoke(world.pkis.alice.cert)
    status = world.query(cert_id_hash="sha1")
    assert status.state == "revoked" and status.reason == "keyCompromise"
    assert isinstance(x509_ocsp.load_der_ocsp_response(status.evidence).hash_algorithm, hashes.SHA1)


def test_certificate_of_another_ca_is_unknown_to_a_locally_trusted_responder(world: World) -> None:
    # The responder only speaks for its own CA; asked about twin_ca's certificate it signs "unknown",
    # which a verifier configured to trust this responder for every issuer accepts as such.
    status = world.query(
        subject=world.pkis.outsider, issuer=world.pkis.twin_ca, trusted_responders=[world.pkis.ca.cert]
    )
    assert status.state == "unknown"


def test_answer_about_another_cas_certificate_is_refused_when_the_responder_is_not_trusted_for_it(
    world: World,
) -> None:
    code = refusal_code(lambda: world.query(subject=world.pkis.outsider, issuer=world.pkis.twin_ca))
    assert code == "ocsp-unauthorized-responder"


def test_response_about_a_different_certificate_is_refused_as_wrong_certificate(world: World) -> None:
    responder = dev_pki.DevOcspResponder(world.pkis.ca, world.revocations)

    def about_bob(body: bytes) -> Reply:
        nonce = x509_ocsp.load_der_ocsp_request(body).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        return ocsp_reply(responder.respond(ocsp.build_request(world.pkis.bob.cert, world.pkis.ca.cert, nonce=nonce)))

    world.server.handlers["/ocsp"] = about_bob
    assert refusal_code(world.query) == "ocsp-wrong-certificate"


def test_unsuccessful_response_status_is_refused_as_ocsp_error_naming_it(world: World) -> None:
    try_later = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER)
    world.server.handlers["/ocsp"] = lambda _body: ocsp_reply(try_later.public_bytes(DER))
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-error"
    assert "TRY_LATER" in caught.value.reason


def test_development_responder_answers_a_malformed_request_with_malformed_request_status(world: World) -> None:
    responder = dev_pki.DevOcspResponder(world.pkis.ca, world.revocations)
    answer = x509_ocsp.load_der_ocsp_response(responder.respond(b"\x30\x03not an OCSP request"))
    assert answer.response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_response_that_is_not_der_is_refused_as_malformed(world: World) -> None:
    world.server.handlers["/ocsp"] = lambda _body: Reply(b"<html>maintenance</html>", content_type="text/html")
    assert refusal_code(world.query) == "ocsp-malformed"


# --- OCSP: freshness ----------------------------------------------------------------------------------


def test_response_older_than_max_age_is_refused_as_stale(world: World) -> None:
    past = now_utc() - timedelta(minutes=30)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, clock=lambda: past))
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-stale"
    assert "s old" in caught.value.reason


def test_response_past_its_next_update_is_refused_as_stale_whatever_the_max_age(world: World) -> None:
    past = now_utc() - timedelta(hours=2)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, clock=lambda: past))
    with pytest.raises(Refusal) as caught:
        world.query(max_age=86400.0)
    assert caught.value.code == "ocsp-stale"
    assert "nextUpdate" in caught.value.reason


def test_response_dated_in_the_future_is_refused_as_stale(world: World) -> None:
    future = now_utc() + timedelta(hours=1)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, clock=lambda: future))
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-stale"
    assert "future" in caught.value.reason


def test_responder_clock_a_little_ahead_is_tolerated_as_skew(world: World) -> None:
    ahead = now_utc() + timedelta(seconds=120)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, clock=lambda: ahead))
    assert world.query().state == "good"


# --- OCSP: who signed ---------------------------------------------------------------------------------


def test_delegated_responder_with_ocsp_signing_is_accepted(world: World) -> None:
    delegate = dev_pki.issue_ocsp_delegate(world.pkis.ca)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, delegate=delegate))
    world.revocations.revoke(world.pkis.alice.cert)
    status = world.query()
    assert status.state == "revoked"
    assert status.responder == delegate.cert.subject.rfc4514_string()


def test_response_signed_by_unrelated_cas_delegate_is_refused_as_unauthorized(world: World) -> None:
    # twin_ca has ca's very name, so only the signature on the delegate certificate tells them apart.
    delegate = dev_pki.issue_ocsp_delegate(world.pkis.twin_ca)
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, delegate=delegate))
    assert refusal_code(world.query) == "ocsp-unauthorized-responder"


def test_response_signed_by_unrelated_ca_itself_is_refused_as_unauthorized(world: World) -> None:
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.stranger_ca, world.revocations))
    assert refusal_code(world.query) == "ocsp-unauthorized-responder"


def test_response_signed_by_same_ca_certificate_without_ocsp_signing_is_refused_as_unauthorized(
    world: World,
) -> None:
    not_a_responder = pki.issue_signing_certificate(world.pkis.ca, "Document Signer", "Agency A")
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, delegate=not_a_responder))
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-unauthorized-responder"
    assert "OCSP" in caught.value.reason


def test_response_signed_by_expired_delegate_is_refused_as_unauthorized(world: World) -> None:
    expired = pki.issue_service_certificate(
        world.pkis.ca,
        "Old OCSP responder",
        ExtendedKeyUsageOID.OCSP_SIGNING,
        days=1,
        not_before=now_utc() - timedelta(days=3),
    )
    world.serve_responder(dev_pki.DevOcspResponder(world.pkis.ca, world.revocations, delegate=expired))
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-unauthorized-responder"
    assert "not valid now" in caught.value.reason


def test_tampered_signature_is_refused(world: World) -> None:
    responder = dev_pki.DevOcspResponder(world.pkis.ca, world.revocations)

    def tampered(body: bytes) -> Reply:
        der = bytearray(responder.respond(body))
        signature = x509_ocsp.load_der_ocsp_response(bytes(der)).signature
        at = bytes(der).rfind(signature) + 10  # inside the ECDSA r value, clear of its DER header
        der[at] ^= 0x01
        return ocsp_reply(bytes(der))

    world.server.handlers["/ocsp"] = tampered
    assert refusal_code(world.query) == "ocsp-signature"


# --- OCSP: nonce --------------------------------------------------------------------------------------


def _answer_with_nonce(responder: dev_pki.DevOcspResponder, nonce: bytes | None) -> Handler:
    """A server that answers the CertID asked for, but as if the request had carried ``nonce``."""

    def handler(body: bytes) -> Reply:
        asked = x509_ocsp.load_der_ocsp_request(body)
        builder = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            asked.issuer_name_hash, asked.issuer_key_hash, asked.serial_number, asked.hash_algorithm
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return ocsp_reply(responder.respond(builder.build().public_bytes(DER)))

    return handler


def test_response_for_a_different_nonce_is_refused(world: World) -> None:
    responder = dev_pki.DevOcspResponder(world.pkis.ca, world.revocations)
    world.server.handlers["/ocsp"] = _answer_with_nonce(responder, secrets.token_bytes(16))
    assert refusal_code(world.query) == "ocsp-nonce"


def test_response_without_a_nonce_is_accepted_within_the_freshness_window(world: World) -> None:
    responder = dev_pki.DevOcspResponder(world.pkis.ca, world.revocations)
    world.server.handlers["/ocsp"] = _answer_with_nonce(responder, None)
    assert world.query().state == "good"


def test_request_sent_without_a_nonce_is_answered_and_accepted(world: World) -> None:
    assert world.query(use_nonce=False).state == "good"


# --- OCSP: the network --------------------------------------------------------------------------------


def test_responder_on_a_closed_port_is_unavailable(world: World) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Refusal) as caught:
        ocsp.query(
            f"http://127.0.0.1:{port}/ocsp",
            world.pkis.alice.cert,
            world.pkis.ca.cert,
            now=now_utc(),
            max_age=MAX_AGE,
            bounds=BOUNDS,
        )
    assert caught.value.code == "ocsp-unavailable"


def test_responder_slower_than_the_timeout_is_abandoned_as_unavailable(world: World) -> None:
    def slow(body: bytes) -> Reply:
        world.server.stop_event.wait(BOUNDS.timeout + 4)
        return ocsp_reply(b"")

    world.server.handlers["/ocsp"] = slow
    started = time.monotonic()
    assert refusal_code(world.query) == "ocsp-unavailable"
    assert time.monotonic() - started < BOUNDS.timeout + 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_responder_sending_more_than_max_bytes_is_unavailable(world: World, declared: bool) -> None:
    chunk = b"\0" * 65536
    count = 4 * BOUNDS.max_bytes // len(chunk)

    def huge(_body: bytes) -> Reply:
        if declared:
            return ocsp_reply(chunk * count)

        def stream() -> Iterator[bytes]:
            for _ in range(count):
                if world.server.stop_event.is_set():
                    return
                yield chunk

        return Reply(stream(), content_type="application/ocsp-response")

    world.server.handlers["/ocsp"] = huge
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-unavailable"
    assert str(BOUNDS.max_bytes) in caught.value.reason


def test_responder_answering_http_500_is_unavailable(world: World) -> None:
    world.server.handlers["/ocsp"] = lambda _body: Reply(b"oops", status=500, content_type="text/plain")
    with pytest.raises(Refusal) as caught:
        world.query()
    assert caught.value.code == "ocsp-unavailable"
    assert "500" in caught.value.reason


# --- CRL ----------------------------------------------------------------------------------------------


def test_crl_without_the_serial_reports_good(world: World) -> None:
    world.revocations.revoke(world.pkis.bob.cert)
    status = world.fetch_crl()
    assert status.state == "good" and status.source == "crl"
    assert status.url == world.server.url("/crl")
    assert status.responder == world.pkis.ca.cert.subject.rfc4514_string()
    assert status.produced_at == status.this_update
    assert status.next_update == status.this_update + timedelta(hours=1)
    assert x509.load_der_x509_crl(status.evidence).get_revoked_certificate_by_serial_number(
        world.pkis.bob.cert.serial_number
    )


def test_crl_lists_the_revoked_serial_with_its_time_and_reason(world: World) -> None:
    revoked_at = whole_seconds(now_utc() - timedelta(hours=5))
    world.revocations.revoke(world.pkis.alice.cert, at=revoked_at)
    status = world.fetch_crl()
    assert status.state == "revoked"
    assert status.revoked_at == revoked_at
    assert status.reason == "keyCompromise"


def test_crl_signed_by_a_same_named_ca_fails_its_signature_check(world: World) -> None:
    world.serve_crl(lambda: dev_pki.build_dev_crl(world.pkis.twin_ca, world.revocations, now=now_utc()))
    assert refusal_code(world.fetch_crl) == "crl-signature"


def test_crl_of_a_differently_named_ca_is_refused_as_wrong_issuer(world: World) -> None:
    world.serve_crl(lambda: dev_pki.build_dev_crl(world.pkis.stranger_ca, world.revocations, now=now_utc()))
    assert refusal_code(world.fetch_crl) == "crl-wrong-issuer"


def test_crl_past_its_next_update_is_refused_as_stale(world: World) -> None:
    world.serve_crl(lambda: dev_pki.build_dev_crl(world.pkis.ca, world.revocations, now=now_utc() - timedelta(hours=3)))
    with pytest.raises(Refusal) as caught:
        world.fetch_crl()
    assert caught.value.code == "crl-stale"
    assert "nextUpdate" in caught.value.reason


def test_crl_dated_in_the_future_is_refused_as_stale(world: World) -> None:
    world.serve_crl(lambda: dev_pki.build_dev_crl(world.pkis.ca, world.revocations, now=now_utc() + timedelta(hours=1)))
    assert refusal_code(world.fetch_crl) == "crl-stale"


def test_crl_that_does_not_parse_is_refused_as_malformed(world: World) -> None:
    world.serve_crl(lambda: b"\x30\x82\x01\x00 definitely not a CRL")
    assert refusal_code(world.fetch_crl) == "crl-malformed"


def test_pem_crl_is_accepted_and_kept_as_der(world: World) -> None:
    world.revocations.revoke(world.pkis.alice.cert)
    der = dev_pki.build_dev_crl(world.pkis.ca, world.revocations, now=now_utc())
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    status = crl.verify_crl(pem, world.pkis.alice.cert, world.pkis.ca.cert, now=now_utc(), max_age=MAX_AGE)
    assert status.state == "revoked"
    assert status.evidence == der


def test_crl_distribution_point_answering_404_is_unavailable(world: World) -> None:
    del world.server.handlers["/crl"]
    assert refusal_code(world.fetch_crl) == "crl-unavailable"


# --- the development revocation record ----------------------------------------------------------------


def test_revocation_written_by_one_instance_is_seen_by_another_on_the_same_file(tmp_path: Path, pkis: Pkis) -> None:
    path = tmp_path / "keys" / "dev-revocations.json"
    writer, reader = dev_pki.DevRevocations(path), dev_pki.DevRevocations(path)
    assert reader.lookup(pkis.alice.cert.serial_number) is None  # the reader has now cached "nothing"
    revoked_at = now_utc() - timedelta(minutes=1)
    writer.revoke(pkis.alice.cert, reason=x509.ReasonFlags.superseded, at=revoked_at)
    assert reader.lookup(pkis.alice.cert.serial_number) == (revoked_at, x509.ReasonFlags.superseded)
    reader.revoke(pkis.bob.cert)  # read-modify-write keeps the other instance's entry
    assert set(writer.all()) == {pkis.alice.cert.serial_number, pkis.bob.cert.serial_number}
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_revoking_again_keeps_the_first_revocation(tmp_path: Path, pkis: Pkis) -> None:
    record = dev_pki.DevRevocations(tmp_path / "dev-revocations.json")
    first = now_utc() - timedelta(days=2)
    record.revoke(pkis.alice.cert, reason=x509.ReasonFlags.key_compromise, at=first)
    record.revoke(pkis.alice.cert, reason=x509.ReasonFlags.superseded)
    assert record.lookup(pkis.alice.cert.serial_number) == (first, x509.ReasonFlags.key_compromise)


def test_concurrent_revocations_through_two_instances_are_all_kept(tmp_path: Path, pkis: Pkis) -> None:
    path = tmp_path / "dev-revocations.json"
    certs = [pki.issue_signing_certificate(pkis.ca, f"Signer {i}", "Agency C", key=pkis.alice.key) for i in range(8)]
    records = [dev_pki.DevRevocations(path), dev_pki.DevRevocations(path)]
    threads = [threading.Thread(target=records[i % 2].revoke, args=(issued.cert,)) for i, issued in enumerate(certs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(dev_pki.DevRevocations(path).all()) == {issued.cert.serial_number for issued in certs}
