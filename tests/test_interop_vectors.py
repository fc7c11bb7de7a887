"""Public XMLDSig vectors: signatures made by other implementations, and signature-wrapping attacks.

Under the edXML profile (one enveloped signature, Reference URI="", exclusive C14N) every one of
these vectors is refused with a stable code and a reason, never a crash.  Separately, the vectors
whose algorithms are inside our allow-list pass the cryptographic check with that same allow-list
(interoperability of the algorithms we accept), and the ones outside it are refused by it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from lxml import etree
from signxml.exceptions import InvalidInput, InvalidSignature, SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.documents import xmlsafe
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    embedded_certificates,
    find_signature,
)
from gateway.policy import Refusal
from gateway.services import EDXML_SIGNATURE_PARENT
from gateway.trust.chain import TrustStore
from gateway.trust.keypolicy import check_public_key_strength
from tests.support import VECTORS

INTEROP = VECTORS / "xmldsig-interop"
ALL_VECTORS = sorted(p for p in [*INTEROP.rglob("*.xml"), *(VECTORS / "xsw-dss").glob("*.xml")])
ANCHOR = x509.load_pem_x509_certificate((INTEROP / "aleksey-xmldsig-01-enveloped" / "cacert.pem").read_bytes())
TR2012 = sorted((INTEROP / "TR2012").glob("*.xml"))
_DS = {"ds": "http://www.w3.org/2000/09/xmldsig#"}


def inside_our_algorithm_profile(path: Path) -> bool:
    """A key in the signature, SHA-256+ signature and digests, RSA keys of at least 2048 bits (ECDSA is fine)."""
    root = etree.fromstring(path.read_bytes())
    profile = SignatureProfile()
    method = root.find(".//ds:SignatureMethod", _DS)
    digests = [d.get("Algorithm") for d in root.iterfind(".//ds:DigestMethod", _DS)]
    modulus = root.find(".//ds:RSAKeyValue/ds:Modulus", _DS)
    rsa_bits = len(base64.b64decode("".join((modulus.text or "").split()))) * 8 if modulus is not None else None
    der = root.find(".//{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue")
    if der is not None:
        key = load_der_public_key(base64.b64decode("".join((der.text or "").split())))
        rsa_bits = key.key_size if isinstance(key, rsa.RSAPublicKey) else None
    carries_key = any(
        root.find(path, _DS) is not None
        for path in (
            ".//ds:KeyValue",
            ".//ds:X509Certificate",
            ".//{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue",
        )
    )
    return (
        carries_key  # keys referenced elsewhere (X509Digest, KeyInfoReference) are never fetched
        and method is not None
        and method.get("Algorithm") in profile.method_uris
        and all(d in profile.digest_uris for d in digests)
        and (rsa_bits is None or rsa_bits >= 2048)
    )


def _name(path: Path) -> str:
    return str(path.relative_to(VECTORS))


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_name)
def test_vector_outside_the_edxml_profile_is_refused_with_a_reason(vector: Path):
    data = vector.read_bytes()
    try:
        root = xmlsafe.parse(data)
        signature = find_signature(root)
        certs = embedded_certificates(signature) if signature is not None else []
        parent = "" if signature is None or signature.getparent() is None else EDXML_SIGNATURE_PARENT
        EnvelopedSignatureVerifier(TrustStore([ANCHOR]), SignatureProfile(), parent).verify(data, root, certs)
    except Refusal as refusal:
        assert refusal.code and refusal.reason
    else:
        pytest.fail(f"{_name(vector)} was accepted although it does not follow the edXML profile")


def _verify_with_our_algorithms(path: Path) -> None:
    profile = SignatureProfile()
    config = SignatureConfiguration(
        require_x509=False,
        location="./",
        expect_references=1,
        signature_methods=profile.signature_methods,
        digest_algorithms=profile.digest_methods,
    )
    result = XMLVerifier().verify(path.read_bytes(), expect_config=config)
    check_public_key_strength(load_pem_public_key(result.signature_key))


@pytest.mark.parametrize("vector", TR2012, ids=_name)
def test_other_implementations_signatures_verify_exactly_when_inside_our_algorithm_profile(vector: Path):
    if inside_our_algorithm_profile(vector):
        _verify_with_our_algorithms(vector)
    else:
        with pytest.raises((InvalidInput, InvalidSignature, SignXMLException, Refusal)):
            _verify_with_our_algorithms(vector)


def test_the_interop_set_exercises_both_outcomes():
    inside = [v.name for v in TR2012 if inside_our_algorithm_profile(v)]
    assert len(inside) >= 8 and len(inside) < len(TR2012)


def test_wrapping_vectors_never_reach_the_signed_content_check():
    """DSS's XSW set relies on Id references; the profile refuses them before any content is used."""
    codes = {}
    for vector in sorted((VECTORS / "xsw-dss").glob("XSW-*.xml")):
        data = vector.read_bytes()
        root = xmlsafe.parse(data)
        with pytest.raises(Refusal) as caught:
            EnvelopedSignatureVerifier(TrustStore([ANCHOR]), SignatureProfile(), "").verify(
                data, root, embedded_certificates(find_signature(root))
            )
        codes[vector.name] = caught.value.code
    assert set(codes.values()) <= {
        "signature-profile",
        "signature-misplaced",
        "signature-ambiguous",
        "signature-algorithm",
    }
    assert etree  # lxml used to build trees in other tests
