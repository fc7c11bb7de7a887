"""Signed edXML documents verified per second on one core: the gateway's verifier against signxml.

Method: the 5 KB ``cong-van.edxml`` sample, and the same with a 200 KB attachment, signed with
RSA-2048 / rsa-sha256 by a certificate from a fresh CA.  Timed on one core, each in the same run:

* the gateway: hardened parse, the profile's structural checks, the signer pinned to its registered
  certificate, the chain decided by the trust store (cached per certificate, as in the server), the
  signature value and the digest on the one parsed tree;
* signxml ``XMLVerifier().verify`` with the certificate pinned (``x509_cert``): its bare check;
* signxml with the CA file (``ca_pem_file``), which builds and checks the chain every time;
* the floor: one exclusive C14N of the already parsed document, SHA-256, one RSA verify.

    .venv/bin/python bench/verify_signature.py [--seconds 2] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier

from bench.documents import SAMPLE, with_attachment
from bench.measure import Figure, rate
from bench.report import timed_command
from gateway.documents import xmlsafe
from gateway.documents.signing import sign_edxml
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    find_signature,
    signature_value,
)
from gateway.documents.xmldsig import exclusive_c14n
from gateway.services import EDXML_SIGNATURE_PARENT
from gateway.trust import pki
from gateway.trust.chain import TrustStore

NAME = "verification"


def figures(*, seconds: float = 2.0, repetitions: int = 3) -> list[Figure]:
    ca = pki.make_ca()
    signer = pki.issue_signing_certificate(ca, "UBND", "000.00.00.H29")
    public = signer.cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    ours = EnvelopedSignatureVerifier(TrustStore([ca.cert]), SignatureProfile(), EDXML_SIGNATURE_PARENT)
    config = SignatureConfiguration(require_x509=True, expect_references=1)
    method = f"one core, warm-up 0.5 s, {repetitions} × {seconds:g} s, median (min–max)"
    found: list[Figure] = []
    with tempfile.TemporaryDirectory() as home:
        ca_file = Path(home) / "ca.pem"
        ca_file.write_bytes(pki.cert_pem(ca.cert).encode())
        for label, extra in (("5 KB", 0), ("200 KB", 200_000)):
            data = sign_edxml(with_attachment(SAMPLE.read_bytes(), extra), signer.key, [signer.cert])
            size = f"{label} ({len(data) // 1024} KiB)"
            root = xmlsafe.parse(data)
            signature = find_signature(root)
            assert signature is not None
            value = signature_value(signature)
            signed_info = exclusive_c14n(signature[0], None)

            def gateway(data: bytes = data) -> None:
                ours.verify(data, xmlsafe.parse(data, xmlsafe.XmlLimits(max_bytes=len(data))), [signer.cert])

            def pinned(data: bytes = data) -> None:
                XMLVerifier().verify(data, x509_cert=signer.cert, expect_config=config)

            def chained(data: bytes = data) -> None:
                XMLVerifier().verify(data, ca_pem_file=str(ca_file), expect_config=config)

            def floor(root: etree._Element = root, value: bytes = value, signed_info: bytes = signed_info) -> None:
                hashlib.sha256(exclusive_c14n(root, None)).digest()
                public.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())

            g = rate(gateway, seconds=seconds, repetitions=repetitions)
            p = rate(pinned, seconds=seconds, repetitions=repetitions)
            c = rate(chained, seconds=seconds, repetitions=repetitions)
            f = rate(floor, seconds=seconds, repetitions=repetitions)
            common = {"benchmark": NAME, "unit": "/s", "spread": g.spread, "method": method}
            found += [
                Figure(
                    name=f"verify {size}, pinned",
                    value=g.median,
                    baseline="signxml verify, x509_cert pinned",
                    baseline_value=p.median,
                    target=2.0,
                    **common,
                ),
                Figure(
                    name=f"verify {size}, chain built",
                    value=g.median,
                    baseline="signxml verify, ca_pem_file",
                    baseline_value=c.median,
                    target=4.0,
                    **common,
                ),
                Figure(
                    name=f"verify {size}, against the floor",
                    value=g.median,
                    baseline="floor: one exc-C14N + SHA-256 + one RSA verify",
                    baseline_value=f.median,
                    **common,
                ),
            ]
    return found


def run(quick: bool) -> list[Figure]:
    return figures(seconds=0.2, repetitions=1) if quick else figures()


def main() -> None:
    timed_command(__doc__.split("\n")[0], figures)


if __name__ == "__main__":
    main()
