"""RFC 3161 timestamps: the client in gateway.trust.timestamps against the development TSA, over real HTTP.

One werkzeug server on loopback serves the module; each test installs the handler it needs under its own
path — the development TSA, or one that misbehaves in a particular way — and the client reaches it through
:func:`gateway.fetch.fetch` exactly as in production.  The last tests check that the tokens the
development TSA builds by hand are accepted by ``rfc3161_client``'s own decoder and verifier, and by
``openssl ts -verify``, and that requests built by either side are understood by the other.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client import _rust as rfc3161_rust

from gateway.fetch import Bounds
from gateway.policy import Refusal
from gateway.trust import pki
from gateway.trust.dev_tsa import DEV_POLICY_OID, DevTsa, issue_tsa_certificate
from gateway.trust.timestamps import (
    REPLY_CONTENT_TYPE,
    Asn1TimeStampResp,
    build_request,
    request_timestamp,
    verify_timestamp,
)
from tests.pki_server import Reply
from tests.pki_server import RouteServer as Loopback

DIGEST = hashlib.sha256(b"an accepted edXML document").digest()
OTHER_DIGEST = hashlib.sha256(b"a different document").digest()
DER = serialization.Encoding.DER


# --- the loopback server -------------------------------------------------------------------------


def serve_tsa(server: Loopback, path: str, tsa: DevTsa) -> str:
    """POST ``path`` → ``tsa.respond(body)``, as application/timestamp-reply."""
    return server.route(path, lambda body: Reply(tsa.respond(body), content_type=REPLY_CONTENT_TYPE))


@pytest.fixture(scope="module")
def server() -> Iterator[Loopback]:
    loopback = Loopback()
    yield loopback
    loopback.close()


# --- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkis:
    ca: pki.Issued
    tsa: pki.Issued  # issue_tsa_certificate(ca)
    stranger_ca: pki.Issued  # a CA that is not among the anchors
    old_ca: pki.Issued  # valid since 30 days ago
    intermediate: pki.Issued  # a sub-CA of ca


def _ca_certificate(
    subject: str, key: pki.SigningKey, issuer: pki.Issued | None, not_before: datetime, path_length: int
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return builder.sign(signer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pkis() -> Pkis:
    ca = pki.make_ca()
    old_key = pki.generate_key("ec")
    old_ca = pki.Issued(old_key, _ca_certificate("Old CA", old_key, None, datetime.now(UTC) - timedelta(days=30), 1))
    sub_key = pki.generate_key("ec")
    intermediate = pki.Issued(
        sub_key, _ca_certificate("Sub CA", sub_key, ca, datetime.now(UTC) - timedelta(hours=1), 0)
    )
    return Pkis(
        ca=ca,
        tsa=issue_tsa_certificate(ca),
        stranger_ca=pki.make_ca("Some Other CA"),
        old_ca=old_ca,
        intermediate=intermediate,
    )


class RecordingClock:
    """The TSA's clock, a little in the past and with microseconds, remembering what it said."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or (datetime.now(UTC) - timedelta(seconds=30)).replace(microsecond=654321)
        self.readings: list[datetime] = []

    def __call__(self) -> datetime:
        self.readings.append(self.at)
        return self.at


def refusal_code(call: Callable[[], object]) -> str:
    with pytest.raises(Refusal) as info:
        call()
    return info.value.code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- granted tokens --------------------------------------------------------------------------------


def test_token_is_granted_and_verifies(server: Loopback, pkis: Pkis) -> None:
    clock = RecordingClock()
    url = serve_tsa(server, "/granted", DevTsa(pkis.tsa, clock=clock))

    stamp = request_timestamp(url, DIGEST, [pkis.ca.cert])

    assert stamp.gen_time == clock.readings[0]  # microseconds survive: GeneralizedTime with a fraction
    assert stamp.gen_time.tzinfo is not None and stamp.gen_time.utcoffset() == timedelta(0)
    assert stamp.digest == DIGEST
    assert stamp.tsa_certificate == pkis.tsa.cert
    assert stamp.tsa_fingerprint == pki.fingerprint(pkis.tsa.cert)
    assert stamp.tsa_subject == pkis.tsa.cert.subject.rfc4514_string()
    assert stamp.serial > 0
    assert decode_timestamp_response(stamp.token).status == PKIStatus.GRANTED


def test_stored_token_verifies_again_from_its_bytes_alone(server: Loopback, pkis: Pkis) -> None:
    url = serve_tsa(server, "/stored", DevTsa(pkis.tsa))
    stamp = request_timestamp(url, DIGEST, [pkis.ca.cert])
    stored = bytes(stamp.token)

    again = verify_timestamp(stored, DIGEST, [pkis.ca.cert])

    assert again == stamp


def test_token_verifies_after_the_tsa_certificate_expired(pkis: Pkis) -> None:
    """Trust is judged at genTime (RFC 3161 §4.1): a certificate that expired since does not void the token."""
    start = datetime.now(UTC) - timedelta(days=20)
    tsa = pki.issue_service_certificate(
        pkis.old_ca, "Old TSA", ExtendedKeyUsageOID.TIME_STAMPING, not_before=start, days=10
    )
    token = DevTsa(tsa, clock=lambda: start + timedelta(days=5)).respond(build_request(DIGEST, nonce=1))

    assert verify_timestamp(token, DIGEST, [pkis.old_ca.cert], nonce=1).gen_time == start + timedelta(days=5)


def test_serials_increase(pkis: Pkis) -> None:
    tsa = DevTsa(pkis.tsa)
    serials = [
        verify_timestamp(tsa.respond(build_request(DIGEST, nonce=n)), DIGEST, [pkis.ca.cert]).serial for n in (1, 2)
    ]
    assert serials[0] < serials[1]


def test_rsa_tsa_tokens_verify(pkis: Pkis) -> None:
    """The RSA PKCS #1 v1.5 signing path of the development TSA, next to the default EC one."""
    tsa = pki.issue_service_certificate(
        pkis.ca, "RSA TSA", ExtendedKeyUsageOID.TIME_STAMPING, key=pki.generate_key("rsa")
    )
    token = DevTsa(tsa).respond(build_request(DIGEST, nonce=5))
    assert verify_timestamp(token, DIGEST, [pkis.ca.cert], nonce=5).tsa_certificate == tsa.cert


def test_tsa_below_an_intermediate_chains_through_it(pkis: Pkis) -> None:
    tsa = issue_tsa_certificate(pkis.intermediate)
    request = build_request(DIGEST, nonce=9)

    with_chain = DevTsa(tsa, chain=[pkis.intermediate.cert]).respond(request)
    assert verify_timestamp(with_chain, DIGEST, [pkis.ca.cert]).tsa_certificate == tsa.cert
    with_root_too = DevTsa(tsa, chain=[pkis.intermediate.cert, pkis.ca.cert]).respond(request)  # as services.py does
    assert verify_timestamp(with_root_too, DIGEST, [pkis.ca.cert]).tsa_certificate == tsa.cert

    without_chain = DevTsa(tsa).respond(request)
    assert refusal_code(lambda: verify_timestamp(without_chain, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"
    assert verify_timestamp(without_chain, DIGEST, [pkis.ca.cert], intermediates=[pkis.intermediate.cert])


def test_granted_with_mods_is_accepted(pkis: Pkis) -> None:
    """RFC 3161 §2.4.2: grantedWithMods carries a token too; the status lies outside what is signed."""
    granted = Asn1TimeStampResp.load(DevTsa(pkis.tsa).respond(build_request(DIGEST, nonce=3)))
    modified = Asn1TimeStampResp(
        {"status": {"status": "granted_with_mods"}, "time_stamp_token": granted["time_stamp_token"]}
    ).dump()

    stamp = verify_timestamp(modified, DIGEST, [pkis.ca.cert], nonce=3)
    assert stamp.token == modified


# --- refusals --------------------------------------------------------------------------------------


def test_different_digest_is_a_mismatch(server: Loopback, pkis: Pkis) -> None:
    stamp = request_timestamp(serve_tsa(server, "/mismatch", DevTsa(pkis.tsa)), DIGEST, [pkis.ca.cert])
    assert refusal_code(lambda: verify_timestamp(stamp.token, OTHER_DIGEST, [pkis.ca.cert])) == "timestamp-mismatch"


def _tst_info_span(token: bytes) -> tuple[int, int]:
    tst_info = Asn1TimeStampResp.load(token)["time_stamp_token"]["content"]["encap_content_info"]["content"]
    start = token.index(tst_info.contents)
    return start, start + len(tst_info.contents)


@pytest.mark.parametrize(
    "where",
    ["tst-info-serial", "tst-info-gen-time", "tst-info-last-byte", "signature-last-byte", "signature-middle"],
)
def test_tampered_token_is_refused(pkis: Pkis, where: str) -> None:
    token = DevTsa(pkis.tsa, clock=RecordingClock()).respond(build_request(DIGEST, nonce=4))
    start, end = _tst_info_span(token)
    tst = Asn1TimeStampResp.load(token)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    signature = Asn1TimeStampResp.load(token)["time_stamp_token"]["content"]["signer_infos"][0]["signature"].contents
    positions = {
        "tst-info-serial": token.index(tst["serial_number"].contents, start) + 3,
        "tst-info-gen-time": token.index(tst["gen_time"].contents, start) + 13,  # a digit of the seconds
        "tst-info-last-byte": end - 1,
        "signature-last-byte": len(token) - 1,
        "signature-middle": token.rindex(signature) + len(signature) // 2,
    }
    tampered = bytearray(token)
    tampered[positions[where]] ^= 0x01

    code = refusal_code(lambda: verify_timestamp(bytes(tampered), DIGEST, [pkis.ca.cert], nonce=4))
    assert code == "timestamp-signature"  # each of these flips keeps the DER valid


def test_tsa_from_another_ca_is_untrusted(server: Loopback, pkis: Pkis) -> None:
    url = serve_tsa(server, "/stranger", DevTsa(issue_tsa_certificate(pkis.stranger_ca)))
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"


def test_tsa_without_timestamping_eku_is_untrusted(server: Loopback, pkis: Pkis) -> None:
    signer = pki.issue_signing_certificate(pkis.ca, "Document Signer", "Some Agency")
    url = serve_tsa(server, "/no-eku", DevTsa(signer))
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"


def test_tsa_with_non_critical_timestamping_eku_is_untrusted(pkis: Pkis) -> None:
    """RFC 3161 §2.3: the extended key usage MUST be critical."""
    soft = pki.issue_signing_certificate(
        pkis.ca, "Soft TSA", "Some Agency", extended_key_usage=[ExtendedKeyUsageOID.TIME_STAMPING]
    )
    token = DevTsa(soft).respond(build_request(DIGEST, nonce=6))
    assert refusal_code(lambda: verify_timestamp(token, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"


def test_token_outside_the_tsa_certificate_validity_is_untrusted(pkis: Pkis) -> None:
    before_issue = datetime.now(UTC) - timedelta(days=1)
    token = DevTsa(pkis.tsa, clock=lambda: before_issue).respond(build_request(DIGEST, nonce=7))
    assert refusal_code(lambda: verify_timestamp(token, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"


def test_token_without_the_tsa_certificate_is_untrusted(pkis: Pkis) -> None:
    without_cert_req = tsp.TimeStampReq(
        {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": DIGEST}}
    ).dump()
    token = DevTsa(pkis.tsa).respond(without_cert_req)
    assert refusal_code(lambda: verify_timestamp(token, DIGEST, [pkis.ca.cert])) == "timestamp-untrusted"


class _WrongCertificateBinding(DevTsa):
    """Names another certificate in its ESS signing-certificate-v2 attribute (but signs correctly)."""

    def __init__(self, issued: pki.Issued, named: x509.Certificate) -> None:
        super().__init__(issued)
        self._named = named

    def _signing_certificate_v2(self) -> tsp.SigningCertificateV2:
        return tsp.SigningCertificateV2(
            {"certs": [{"cert_hash": hashlib.sha256(self._named.public_bytes(DER)).digest()}]}
        )


def test_ess_binding_to_another_certificate_is_refused(pkis: Pkis) -> None:
    """RFC 5816 §2.2.1: rfc3161_client does not check this attribute; the gateway does."""
    token = _WrongCertificateBinding(pkis.tsa, named=pkis.ca.cert).respond(build_request(DIGEST, nonce=8))
    VerifierBuilder(roots=[pkis.ca.cert]).build().verify(decode_timestamp_response(token), DIGEST)  # library: fine
    assert refusal_code(lambda: verify_timestamp(token, DIGEST, [pkis.ca.cert])) == "timestamp-signature"


def test_nonce_echoed_wrong_is_refused(server: Loopback, pkis: Pkis) -> None:
    tsa = DevTsa(pkis.tsa)

    def answer_for_another_nonce(body: bytes) -> Reply:
        request = tsp.TimeStampReq.load(body)
        other = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": request["message_imprint"],
                "nonce": request["nonce"].native + 1,
                "cert_req": True,
            }
        )
        return Reply(tsa.respond(other.dump()))

    url = server.route("/other-nonce", answer_for_another_nonce)
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-nonce"


def test_missing_nonce_is_refused(pkis: Pkis) -> None:
    without_nonce = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": DIGEST},
            "cert_req": True,
        }
    ).dump()
    token = DevTsa(pkis.tsa).respond(without_nonce)
    assert refusal_code(lambda: verify_timestamp(token, DIGEST, [pkis.ca.cert], nonce=12345)) == "timestamp-nonce"


def test_tsa_down_is_unavailable(pkis: Pkis) -> None:
    url = f"http://127.0.0.1:{_free_port()}/tsa"  # nothing listens there any more
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-unavailable"


def test_tsa_slower_than_the_timeout_is_unavailable_in_time(server: Loopback, pkis: Pkis) -> None:
    tsa = DevTsa(pkis.tsa)

    def slow(body: bytes) -> Reply:
        server.stop_event.wait(5)
        return Reply(tsa.respond(body))

    url = server.route("/slow", slow)
    bounds = Bounds(timeout=0.5)
    started = time.monotonic()
    code = refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert], bounds=bounds))
    elapsed = time.monotonic() - started

    assert code == "timestamp-unavailable"
    assert elapsed < bounds.timeout + 1


def test_huge_answer_is_unavailable(server: Loopback, pkis: Pkis) -> None:
    def huge(body: bytes) -> Reply:
        def chunks() -> Iterator[bytes]:
            for _ in range(40):  # 2.5 MiB against the 1 MiB bound, without a Content-Length to refuse early
                if server.stop_event.is_set():
                    return
                yield b"\x30" * 65536

        return Reply(chunks())

    url = server.route("/huge", huge)
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-unavailable"


def test_http_error_is_unavailable(server: Loopback, pkis: Pkis) -> None:
    url = server.route("/broken", lambda body: Reply(b"internal error", status=500, content_type="text/plain"))
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-unavailable"


def test_rejection_is_refused_with_the_failure_info(server: Loopback, pkis: Pkis) -> None:
    tsa = DevTsa(pkis.tsa)
    url = server.route("/reject", lambda body: Reply(tsa.respond(b"mangled " + body)))

    with pytest.raises(Refusal) as info:
        request_timestamp(url, DIGEST, [pkis.ca.cert])

    assert info.value.code == "timestamp-rejected"
    assert "badDataFormat" in info.value.reason


def test_weak_imprint_is_rejected_with_bad_alg(pkis: Pkis) -> None:
    sha1_request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": hashlib.sha1(b"x").digest()},
            "nonce": 1,
            "cert_req": True,
        }
    ).dump()
    response = Asn1TimeStampResp.load(DevTsa(pkis.tsa).respond(sha1_request))
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {"bad_alg"}

    with pytest.raises(Refusal) as info:
        verify_timestamp(response.dump(), DIGEST, [pkis.ca.cert])
    assert info.value.code == "timestamp-rejected"
    assert "badAlg" in info.value.reason


def test_malformed_request_is_rejected_with_bad_data_format(pkis: Pkis) -> None:
    for request in (b"", b"garbage", build_request(DIGEST, nonce=1)[:-1]):
        response = Asn1TimeStampResp.load(DevTsa(pkis.tsa).respond(request))
        assert response["status"]["status"].native == "rejection"
        assert response["status"]["fail_info"].native == {"bad_data_format"}
        assert response["time_stamp_token"].native is None


def test_garbage_is_malformed(server: Loopback, pkis: Pkis) -> None:
    url = server.route("/garbage", lambda body: Reply(b"this is not DER at all"))
    assert refusal_code(lambda: request_timestamp(url, DIGEST, [pkis.ca.cert])) == "timestamp-malformed"

    for garbage in (
        b"",
        b"\x30\x00",
        b"\x30\x03\x02\x01\x00\x00",
        DevTsa(pkis.tsa).respond(build_request(DIGEST, nonce=1))[:-3],
    ):
        assert refusal_code(lambda g=garbage: verify_timestamp(g, DIGEST, [pkis.ca.cert])) == "timestamp-malformed"


def test_token_with_trailing_bytes_is_malformed(pkis: Pkis) -> None:
    token = DevTsa(pkis.tsa).respond(build_request(DIGEST, nonce=1))
    assert refusal_code(lambda: verify_timestamp(token + b"\x00", DIGEST, [pkis.ca.cert])) == "timestamp-malformed"


def test_request_is_sha256_with_nonce_and_cert_req() -> None:
    request = tsp.TimeStampReq.load(build_request(DIGEST, nonce=2**64 - 1))
    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert request["message_imprint"]["hashed_message"].native == DIGEST
    assert request["nonce"].native == 2**64 - 1
    assert request["cert_req"].native is True
    with pytest.raises(ValueError):
        build_request(DIGEST[:20], nonce=1)


# --- interoperability ------------------------------------------------------------------------------


def test_rfc3161_client_accepts_dev_tsa_tokens(pkis: Pkis) -> None:
    clock = RecordingClock()
    token = DevTsa(pkis.tsa, clock=clock).respond(build_request(DIGEST, nonce=424242))

    response = decode_timestamp_response(token)
    assert response.status == PKIStatus.GRANTED
    info = response.tst_info
    assert info.version == 1
    assert info.policy == x509.ObjectIdentifier(DEV_POLICY_OID)
    assert info.message_imprint.hash_algorithm == x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
    assert info.message_imprint.message == DIGEST
    assert info.nonce == 424242
    assert info.gen_time == clock.at.replace(microsecond=0)  # the library keeps whole seconds
    assert info.name.value == pkis.tsa.cert.subject
    assert response.signed_data.certificates == {pkis.tsa.cert.public_bytes(DER)}
    (signer,) = response.signed_data.signer_infos
    assert (signer.issuer, signer.serial_number) == (pkis.tsa.cert.issuer, pkis.tsa.cert.serial_number)

    verifier = VerifierBuilder(roots=[pkis.ca.cert], nonce=424242).build()
    assert verifier.verify(response, DIGEST)
    assert verify_timestamp(token, DIGEST, [pkis.ca.cert], nonce=424242).serial == info.serial_number


def test_dev_tsa_answers_rfc3161_client_requests(pkis: Pkis) -> None:
    data = b"an accepted edXML document"
    request = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA512).build()
    response = decode_timestamp_response(DevTsa(pkis.tsa).respond(request.as_bytes()))

    assert (
        VerifierBuilder.from_request(request).add_root_certificate(pkis.ca.cert).build().verify_message(response, data)
    )


def test_rfc3161_client_parses_our_requests() -> None:
    parsed = rfc3161_rust.parse_timestamp_request(build_request(DIGEST, nonce=77))  # the library's own decoder
    assert parsed.version == 1
    assert parsed.nonce == 77
    assert parsed.cert_req is True
    assert parsed.message_imprint.message == DIGEST


def test_openssl_ts_verify_accepts_dev_tsa_tokens(pkis: Pkis, tmp_path: Path) -> None:
    """An independent verifier (TS_RESP_verify_response: ESS certificate, imprint, nonce, chain) agrees."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    request = build_request(DIGEST, nonce=31337)
    (tmp_path / "query.tsq").write_bytes(request)
    (tmp_path / "reply.tsr").write_bytes(DevTsa(pkis.tsa).respond(request))
    (tmp_path / "ca.pem").write_bytes(pkis.ca.cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-queryfile", "query.tsq", "-in", "reply.tsr", "-CAfile", "ca.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout
